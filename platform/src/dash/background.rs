//! Dash's background-callback polling protocol, without HTTP.
//!
//! The renderer posts a background callback's body once; the answer carries `cacheKey`,
//! `job`, the `cancel` inputs and `progressDefault` (and no `multi`). It then re-posts the
//! body (values nulled) with `?cacheKey=…&job=…` every `background.interval` ms; answers
//! in between are `{"multi": true}` with `progress` when there is some, the last one
//! carries `response`. A request whose inputs intersect a job's cancel inputs carries
//! `&cancelJob=…`; starting a callback whose job is still running carries `&oldJob=…`.

use serde_json::{Map, Value, json};

use super::dependencies::Background;

/// The query parameters Dash's renderer adds to `_dash-update-component`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BackgroundQuery {
    /// `endId`: the page load's token from `_dash-config`.
    pub end_id: Option<String>,
    /// `cacheKey` of the job being polled.
    pub cache_key: Option<String>,
    /// `job` being polled.
    pub job: Option<String>,
    /// `cancelJob` (repeated): jobs to stop because a cancel input changed.
    pub cancel_jobs: Vec<String>,
    /// `oldJob` (repeated): jobs superseded by this new run.
    pub old_jobs: Vec<String>,
}

impl BackgroundQuery {
    /// Pick Dash's parameters out of the decoded query pairs; others are ignored.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut query = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "endId" => query.end_id = Some(value),
                "cacheKey" => query.cache_key = Some(value),
                "job" => query.job = Some(value),
                "cancelJob" => query.cancel_jobs.push(value),
                "oldJob" => query.old_jobs.push(value),
                _ => {}
            }
        }
        query
    }
}

/// Dash's signed page token (`_dash-config`'s `end_id`): `value~mac`, the MAC (hex) over
/// `value` bound to the scope `end` and to the app (`tenant/app`) whose page it was issued
/// on, in the shape `dash._callback_signing.sign` writes. Jobs are bound to the whole token
/// ([`crate::jobs::Owner`]), so a page reaches only its own; a callback request whose
/// `endId` this platform did not issue for this app is refused ([`end_id_is_signed`]).
pub fn sign_end_id(
    secrets: &crate::secretbox::SecretBox,
    tenant: &str,
    app: &str,
    value: &str,
) -> String {
    format!("{value}~{}", end_id_mac(secrets, tenant, app, value))
}

/// Whether `signed` is an `end_id` this platform issued for app `tenant/app`
/// (constant-time comparison).
pub fn end_id_is_signed(
    secrets: &crate::secretbox::SecretBox,
    tenant: &str,
    app: &str,
    signed: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some((value, mac)) = signed.rsplit_once('~') else {
        return false;
    };
    end_id_mac(secrets, tenant, app, value)
        .as_bytes()
        .ct_eq(mac.as_bytes())
        .into()
}

fn end_id_mac(
    secrets: &crate::secretbox::SecretBox,
    tenant: &str,
    app: &str,
    value: &str,
) -> String {
    // `derive` is an HMAC-SHA256 under the platform key's derivation root; slugs hold no
    // `/` or NUL, so the input names one (app, value) pair.
    let mac = secrets.derive(format!("tessera dash end\0{tenant}/{app}\0{value}").as_bytes());
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first answer to a background callback: its handles, cancel inputs and progress
/// defaults, as Dash's `_setup_background_callback` writes them.
pub fn started_body(job: &str, spec: &Background) -> String {
    let mut body = Map::new();
    body.insert("cacheKey".into(), Value::String(job.to_owned()));
    body.insert("job".into(), Value::String(job.to_owned()));
    if !spec.cancel.is_empty() {
        body.insert("cancel".into(), Value::Array(spec.cancel.clone()));
    }
    if let Some(defaults) = &spec.progress_default {
        let map: Map<String, Value> = spec
            .progress
            .iter()
            .cloned()
            .zip(defaults.iter().cloned())
            .collect();
        body.insert("progressDefault".into(), Value::Object(map));
    }
    Value::Object(body).to_string()
}

/// The progress object of a poll answer (`{"bar.value": 3}`) from the guest's report, a
/// JSON array with one value per progress output; `None` if it does not fit.
pub fn progress_object(spec: &Background, report: &str) -> Option<Value> {
    let values: Vec<Value> = serde_json::from_str(report).ok()?;
    if values.len() != spec.progress.len() || values.is_empty() {
        return None;
    }
    let map: Map<String, Value> = spec.progress.iter().cloned().zip(values).collect();
    Some(Value::Object(map))
}

/// The answer to a poll while the job runs.
pub fn pending_body(progress: Option<Value>) -> String {
    match progress {
        Some(progress) => json!({"multi": true, "progress": progress}).to_string(),
        None => json!({"multi": true}).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_ids_are_signed_as_dash_signs_them() {
        let secrets = crate::secretbox::SecretBox::from_key(&[7; 32]);
        let signed = sign_end_id(&secrets, "acme", "sales", "AbC123");
        let (value, mac) = signed.rsplit_once('~').expect("value~mac");
        assert_eq!(value, "AbC123");
        assert_eq!(mac.len(), 64);
        assert!(mac.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(end_id_is_signed(&secrets, "acme", "sales", &signed));
        assert!(!end_id_is_signed(&secrets, "acme", "sales", "AbC124~"));
        assert!(!end_id_is_signed(&secrets, "acme", "sales", "AbC123"));
        assert!(!end_id_is_signed(
            &secrets,
            "acme",
            "sales",
            &format!("AbC124~{mac}")
        ));
        // Another app's page, another tenant's app of the same name, another key.
        assert!(!end_id_is_signed(&secrets, "acme", "hr", &signed));
        assert!(!end_id_is_signed(&secrets, "other", "sales", &signed));
        let other = crate::secretbox::SecretBox::from_key(&[8; 32]);
        assert!(!end_id_is_signed(&other, "acme", "sales", &signed));
    }

    fn spec() -> Background {
        Background {
            interval_ms: 500,
            progress: vec!["bar.value".into(), "bar.max".into()],
            progress_default: Some(vec![json!("0"), json!("10")]),
            cancel: vec![json!({"id": "stop", "property": "n_clicks"})],
        }
    }

    #[test]
    fn query_collects_repeated_handles() {
        let pairs = [
            ("endId", "e"),
            ("cancelJob", "a"),
            ("cancelJob", "b"),
            ("oldJob", "c"),
            ("job", "j"),
            ("cacheKey", "k"),
            ("other", "x"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .to_vec();
        let query = BackgroundQuery::from_pairs(pairs);
        assert_eq!(query.end_id.as_deref(), Some("e"));
        assert_eq!(query.cancel_jobs, ["a", "b"]);
        assert_eq!(query.old_jobs, ["c"]);
        assert_eq!(query.job.as_deref(), Some("j"));
        assert_eq!(query.cache_key.as_deref(), Some("k"));
    }

    #[test]
    fn started_body_has_dash_keys_and_no_multi() {
        let body: Value = serde_json::from_str(&started_body("J", &spec())).expect("JSON");
        assert_eq!(
            body,
            json!({"cacheKey": "J", "job": "J",
                   "cancel": [{"id": "stop", "property": "n_clicks"}],
                   "progressDefault": {"bar.value": "0", "bar.max": "10"}})
        );
    }

    #[test]
    fn progress_maps_the_report_onto_outputs() {
        assert_eq!(
            progress_object(&spec(), r#"["3","10"]"#),
            Some(json!({"bar.value": "3", "bar.max": "10"}))
        );
        assert_eq!(progress_object(&spec(), r#"["3"]"#), None);
        assert_eq!(progress_object(&spec(), "nope"), None);
        assert_eq!(pending_body(None), r#"{"multi":true}"#);
    }
}
