/* placeholder: keys.c */
