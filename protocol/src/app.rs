//! The member app's request signature, shared by HQ (which checks it) and the reference member
//! client (which makes it): `Authorization: LE-App <member>.<unix>.<nonce>.<signature>`, the
//! signature being Ed25519 over [`app_signed_text`].
//!
//! The text starts with [`APP_AUTH_CONTEXT`] and a newline, which no checkout QR's signed text
//! (`LE1.<member>.<issued>.<nonce>`) can: a QR never passes as an app signature, nor an app
//! signature as a QR.

/// The `N` dot-separated fields of a signed token (an app signature, a checkout QR after its
/// `LE1.` prefix), or `None` when there are more or fewer.
pub fn dot_fields<const N: usize>(text: &str) -> Option<[&str; N]> {
    let mut parts = text.split('.');
    let mut fields = [""; N];
    for field in &mut fields {
        *field = parts.next()?;
    }
    parts.next().is_none().then_some(fields)
}

pub const APP_AUTH_SCHEME: &str = "LE-App";
/// Domain separation: the first line of every app signature's text.
pub const APP_AUTH_CONTEXT: &str = "LE-APP1";

/// What an app signs for one request: method and path (without the query) are signed, so a
/// signature opens that one request.
pub fn app_signed_text(method: &str, path: &str, member: &str, unix: i64, nonce: &str) -> String {
    format!("{APP_AUTH_CONTEXT}\n{method}\n{path}\n{member}.{unix}.{nonce}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_fields_takes_exactly_n() {
        assert_eq!(
            dot_fields::<4>("m1.17.n.sig"),
            Some(["m1", "17", "n", "sig"])
        );
        assert_eq!(dot_fields::<4>("m1.17.n"), None);
        assert_eq!(dot_fields::<4>("m1.17.n.sig.more"), None);
        assert_eq!(dot_fields::<2>(".x"), Some(["", "x"]));
    }
}
