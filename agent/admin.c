/* placeholder: admin.c */
