/* placeholder: keycache.c */
