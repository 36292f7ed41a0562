//! `[pool]` and `[[routes]]` tables, as a config file may hold them, through the builders: nothing
//! panics, every refusal names an option, and a route that builds yields its policy, limits and
//! rewrite.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reverseit_core::config::{PoolSpec, RouteSpec};
use reverseit_core::{HeaderPolicy, PathRewrite, PoolConfig, RequestLimits};

fuzz_target!(|text: &str| {
    let pool = match toml::from_str::<PoolSpec>(text).map(|spec| spec.build()) {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => {
            assert!(e.problems().iter().all(|p| !p.option().is_empty()));
            PoolConfig::default()
        }
        Err(_) => PoolConfig::default(),
    };
    if let Ok(spec) = toml::from_str::<RouteSpec>(text) {
        match spec.build(&pool) {
            Ok(route) => {
                let _ = HeaderPolicy::from_route(&route);
                let _ = RequestLimits::from_route(&route);
                let _ = PathRewrite::from_route(&route);
                let _ = route.backend().host_header();
            }
            Err(e) => {
                assert!(!e.problems().is_empty());
                assert!(e.problems().iter().all(|p| !p.option().is_empty()));
            }
        }
    }
});
