/* placeholder: policy.c */
