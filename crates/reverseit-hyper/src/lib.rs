//! reverseit-hyper
