//! SockJS transport (helper owns it).
