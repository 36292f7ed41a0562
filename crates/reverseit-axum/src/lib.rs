//! reverseit-axum
