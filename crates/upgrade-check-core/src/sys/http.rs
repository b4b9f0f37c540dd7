//! Where every HTTP client starts: rustls needs its cryptography chosen once
//! per process before any client (even a plain-HTTP one) is built.

/// A client builder with the process's TLS provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    // A second install is refused harmlessly: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
