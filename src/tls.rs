//! tls (to be written).
