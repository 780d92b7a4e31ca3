//! Policy: authentication, CONNECT rewrite, destination ACLs (pure functions).
