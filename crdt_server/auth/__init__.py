"""Who may do what: tokens, principals and the role x document permission matrix."""
