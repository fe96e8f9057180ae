/* placeholder: registry.c */
