//! WebSocket transport (helper owns it).
