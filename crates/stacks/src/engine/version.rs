//! Requests without the API version in their path, so that one client speaks to old and new
//! engines alike: see the engine module's comment.

/// Drops the `/v1.NN` prefix of an engine request's path (`/v1.53/containers/json` becomes
/// `/containers/json`), so that the engine answers in its own API version: see the module's
/// comment. Public (as [`crate::unversioned`]) for other clients of the same engine that must
/// speak to old and new engines alike, such as the benchmark's engine-alone floor: given to
/// bollard's `Docker::with_request_modifier`, it makes a client of any bollard version send
/// what this crate sends. Generic over the body, so that no engine client's type is part of
/// this crate's API.
pub fn unversioned<B>(mut request: http::Request<B>) -> http::Request<B> {
    let uri = request.uri();
    if let Some(pq) = uri.path_and_query() {
        let path = pq.as_str();
        let rest = path
            .strip_prefix("/v")
            .and_then(|r| r.find('/').map(|slash| &r[slash..]))
            .filter(|_| path[2..].starts_with(|c: char| c.is_ascii_digit()));
        if let Some(rest) = rest {
            let mut parts = uri.clone().into_parts();
            if let Ok(new_pq) = rest.parse() {
                parts.path_and_query = Some(new_pq);
                if let Ok(new_uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = new_uri;
                }
            }
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_after(uri: &str) -> String {
        // Any body will do: the function is not tied to bollard's request type.
        let request = http::Request::builder().uri(uri).body(()).expect("request");
        unversioned(request).uri().to_string()
    }

    #[test]
    fn requests_lose_their_version_prefix_only() {
        assert_eq!(
            path_after("unix://2f7661722f72756e/v1.53/containers/json?all=true"),
            "unix://2f7661722f72756e/containers/json?all=true"
        );
        assert_eq!(
            path_after("http://localhost:2375/v1.41/containers/abc/stop"),
            "http://localhost:2375/containers/abc/stop"
        );
        assert_eq!(
            path_after("http://localhost:2375/version"),
            "http://localhost:2375/version"
        );
        assert_eq!(
            path_after("http://localhost:2375/volumes/x"),
            "http://localhost:2375/volumes/x"
        );
        assert_eq!(
            path_after("http://localhost/volumes/json"),
            "http://localhost/volumes/json"
        );
    }
}
