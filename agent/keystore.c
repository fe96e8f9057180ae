/* placeholder: keystore.c */
