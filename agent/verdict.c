/* placeholder: verdict.c */
