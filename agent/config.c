/* placeholder: config.c */
