/* placeholder: policytest.c */
