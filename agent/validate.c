/* placeholder: validate.c */
