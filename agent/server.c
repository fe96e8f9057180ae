/* placeholder: server.c */
