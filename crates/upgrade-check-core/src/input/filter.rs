//! Filters a scenario applies to a variable's value as it fills it in
//! (`{{token | jwt-padded}}`): the token forms libraries disagree about,
//! made from the token the service just issued, which no scenario file can
//! hold as it is.
//!
//! A changed token is signed again with the key that signs the original,
//! when the harness holds it (the run's `{secret}`, which a config gives
//! the service as its signing key): what is changed is then the one thing
//! a verifier may take or refuse. A token no key at hand verifies keeps its
//! signature, and every verifier refuses it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};

/// Every filter, as a scenario names it.
pub(crate) const FILTERS: &[&str] = &[UPPER, JWT_PADDED, JWT_EXPIRED, JWT_ALG_NONE];

/// The value in upper case: what a case-insensitive lookup matches and a
/// case-sensitive one does not.
pub(crate) const UPPER: &str = "upper";

/// A JWT whose payload keeps the `=` padding JWTs leave out (RFC 7515 §2):
/// some decoders accept it, others refuse it.
pub(crate) const JWT_PADDED: &str = "jwt-padded";

/// A JWT that expired an hour ago (`exp`): every verifier must refuse it.
pub(crate) const JWT_EXPIRED: &str = "jwt-expired";

/// A JWT whose header says `"alg": "none"`, with no signature: every
/// verifier must refuse it.
pub(crate) const JWT_ALG_NONE: &str = "jwt-alg-none";

/// `value` through `filter`, signed again with whichever of `keys` signs
/// it; `None` for a filter that does not exist. A value that is not a JWT
/// (three dot-separated segments) is left as it is.
pub(crate) fn apply(filter: &str, value: &str, keys: &[String]) -> Option<String> {
    if !FILTERS.contains(&filter) {
        return None;
    }
    if filter == UPPER {
        return Some(value.to_uppercase());
    }
    let [header, payload, signature] = value.split('.').collect::<Vec<_>>()[..] else {
        return Some(value.to_owned());
    };
    let signer = signer(header, payload, signature, keys);
    let sign = |header: &str, payload: &str| match &signer {
        Some((algorithm, key)) => sign(algorithm, key, &format!("{header}.{payload}"))
            .unwrap_or_else(|| signature.to_owned()),
        None => signature.to_owned(),
    };
    Some(match filter {
        JWT_PADDED => {
            let padded = format!("{payload}{}", "=".repeat((4 - payload.len() % 4) % 4));
            format!("{header}.{padded}.{}", sign(header, &padded))
        }
        JWT_EXPIRED => {
            let Some(mut claims) = URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .filter(serde_json::Value::is_object)
            else {
                return Some(value.to_owned());
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            claims["exp"] = serde_json::Value::from(now.saturating_sub(3600));
            let expired = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{header}.{expired}.{}", sign(header, &expired))
        }
        _ => {
            let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{none}.{payload}.")
        }
    })
}

/// The HMAC algorithm of the token's header and the key among `keys` that
/// verifies its signature, if any does.
fn signer(
    header: &str,
    payload: &str,
    signature: &str,
    keys: &[String],
) -> Option<(String, String)> {
    let decoded: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let algorithm = decoded.get("alg")?.as_str()?.to_owned();
    // The signature is over the segments as they are written.
    let message = format!("{header}.{payload}");
    let key = keys
        .iter()
        .find(|key| sign(&algorithm, key, &message).is_some_and(|signed| signed == signature))?;
    Some((algorithm, key.clone()))
}

/// The base64url HMAC of `message` under `key`, for HS256, HS384 and HS512.
fn sign(algorithm: &str, key: &str, message: &str) -> Option<String> {
    fn mac<M: Mac + KeyInit>(key: &str, message: &str) -> Vec<u8> {
        let mut mac =
            <M as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    let bytes = match algorithm {
        "HS256" => mac::<hmac::Hmac<sha2::Sha256>>(key, message),
        "HS384" => mac::<hmac::Hmac<sha2::Sha384>>(key, message),
        "HS512" => mac::<hmac::Hmac<sha2::Sha512>>(key, message),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "the run's secret";

    /// A token as a service signs it: `{"alg":"HS256","typ":"JWT"}`, claims.
    fn token(claims: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims);
        let signature = sign("HS256", KEY, &format!("{header}.{payload}")).unwrap();
        format!("{header}.{payload}.{signature}")
    }

    fn verifies(token: &str) -> bool {
        let (message, signature) = token.rsplit_once('.').unwrap();
        sign("HS256", KEY, message).as_deref() == Some(signature)
    }

    #[test]
    fn a_padded_payload_is_signed_again_with_the_key_that_signs_the_token() {
        // 28 bytes of claims: 38 characters, two short of a multiple of 4.
        let issued = token(r#"{"sub":"1","exp":1800000000}"#);
        assert!(verifies(&issued));
        let padded = apply(JWT_PADDED, &issued, &["another".to_owned(), KEY.to_owned()]).unwrap();
        let parts: Vec<&str> = padded.split('.').collect();
        assert!(
            parts[1].ends_with("==") && parts[1].len().is_multiple_of(4),
            "{padded}"
        );
        assert!(
            verifies(&padded),
            "signed again: padding is the only change"
        );
        // Without the key, the signature stays: a token every verifier refuses.
        let unsigned = apply(JWT_PADDED, &issued, &["another".to_owned()]).unwrap();
        assert_eq!(
            unsigned.rsplit_once('.').unwrap().1,
            issued.rsplit_once('.').unwrap().1
        );
        assert!(!verifies(&unsigned));
    }

    #[test]
    fn an_expired_token_is_signed_again_and_alg_none_has_no_signature() {
        let issued = token(r#"{"sub":"1","exp":4000000000}"#);
        let expired = apply(JWT_EXPIRED, &issued, &[KEY.to_owned()]).unwrap();
        assert!(verifies(&expired));
        let payload = expired.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["sub"], "1");
        assert!(claims["exp"].as_u64().unwrap() < 4_000_000_000);

        let unsigned = apply(JWT_ALG_NONE, &issued, &[KEY.to_owned()]).unwrap();
        let (header, rest) = unsigned.split_once('.').unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"none","typ":"JWT"}"#
        );
        assert_eq!(rest, format!("{}.", issued.split('.').nth(1).unwrap()));

        // Not a JWT: as it is. Not a filter: none.
        assert_eq!(
            apply(JWT_PADDED, "an-api-key", &[]).as_deref(),
            Some("an-api-key")
        );
        assert_eq!(apply("lower", &issued, &[]), None);
    }
}
