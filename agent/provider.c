/* placeholder: provider.c */
