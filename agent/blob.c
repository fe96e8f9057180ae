/* placeholder: blob.c */
