//! reverseit-ws
