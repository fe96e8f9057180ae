/* placeholder: log.c */
