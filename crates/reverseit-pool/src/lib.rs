//! reverseit-pool
