/* placeholder: dlog.c */
