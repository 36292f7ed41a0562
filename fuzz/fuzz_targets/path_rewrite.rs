//! Request targets through the path rewrite (`PATH-1`..`PATH-4`): nothing panics, and a rewritten
//! path never leaves the backend's prefix nor carries a dot segment.

#![no_main]

use arbitrary::Arbitrary;
use http::Uri;
use libfuzzer_sys::fuzz_target;
use reverseit_core::path::has_dot_segment;
use reverseit_core::{PathRewrite, RouteConfig};

#[derive(Arbitrary, Debug)]
struct Input {
    strip: Option<String>,
    /// The backend URL's path, as an operator may write it.
    prefix: String,
    path: String,
    query: Option<String>,
}

fuzz_target!(|input: Input| {
    // Any text at all: no panic.
    let raw = PathRewrite::new(input.strip.as_deref(), &input.prefix);
    let _ = raw.rewrite(&input.path, input.query.as_deref());

    // A prefix as a route holds it, read from a backend URL the builder accepted.
    let mut builder = RouteConfig::builder(format!("http://backend{}", input.prefix));
    if let Some(strip) = &input.strip {
        builder = builder.strip_path(strip.as_str());
    }
    let Ok(route) = builder.build() else {
        return;
    };
    let rewrite = PathRewrite::from_route(&route);
    let prefix = route.backend().path_prefix().trim_end_matches('/');
    let results = [
        rewrite.rewrite(&input.path, input.query.as_deref()).ok(),
        input
            .path
            .parse::<Uri>()
            .ok()
            .and_then(|uri| rewrite.rewrite_uri(&uri).ok()),
    ];
    for rewritten in results.into_iter().flatten() {
        let path = rewritten.path();
        assert!(path.starts_with('/'), "{path:?} is not absolute");
        assert!(
            path == prefix || path.starts_with(&format!("{prefix}/")),
            "{path:?} left the prefix {prefix:?}"
        );
        assert!(
            !has_dot_segment(&path[prefix.len()..]),
            "{path:?} carries a dot segment"
        );
    }
});
