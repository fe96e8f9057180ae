/* placeholder: service.c */
