//! Every Wycheproof JOSE vector (C2SP/wycheproof, copied unchanged under `tests/data/wycheproof/`)
//! run through the JWS layer: the group's key set built with [`KeySet::from_jwks`], then
//! [`Jws::parse`] and [`Jws::verify`]. A test counts as accepted only when all three succeed, so
//! a refused key set rejects every token of its group, as the JWK vectors expect.
//!
//! Six labels in the data are wrong (see `MISLABELLED`). For those our verifier must give the
//! opposite of the label, and `mislabels_are_what_we_say` recomputes why, so an exception can
//! neither hide a real failure nor outlive the fact that justified it.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_authz_core::token::alg::Alg;
use oidc_authz_core::token::jwk::KeySet;
use oidc_authz_core::token::jws::Jws;
use oidc_authz_core::TokenError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const JWS_VECTORS: &str = include_str!("data/wycheproof/json_web_signature_test.json");
const JWK_VECTORS: &str = include_str!("data/wycheproof/json_web_key_test.json");

/// Vectors of json_web_signature_test.json whose label is wrong, with the reason. Each reason is
/// recomputed by `mislabels_are_what_we_say`.
const MISLABELLED: [(u64, &str); 6] = [
    // Named "invalidBase64Padding…", but the stored tokens carry no padding: they are
    // byte-identical to the valid tcId 357, so they verify.
    (367, "identical to valid tcId 357, labelled invalid"),
    (370, "identical to valid tcId 357, labelled invalid"),
    // A `?` was inserted into a signed segment and the MAC kept: it is not the HMAC of the
    // signing input (and `?` is not base64url either).
    (372, "MAC is not the HMAC of its input, labelled valid"),
    (373, "MAC is not the HMAC of its input, labelled valid"),
    // RFC 7520 Figure 20 is a PS384 signature, but Wycheproof gave the key `"alg": "PS256"`.
    // A key is used with exactly one algorithm (RFC 8725 §3.1); the same file labels this very
    // situation invalid in its "WrongPrimitive" tests (e.g. tcId 340).
    (346, "PS384 token, key pinned to PS256, labelled valid"),
    (350, "PS384 token, key pinned to PS256, labelled valid"),
];

/// What the verifier made of one test.
enum Outcome {
    Accepted,
    KeySetRefused(String),
    Rejected(TokenError),
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }

    /// For the summary: `accepted`, `keyset refused`, or the failed check's name.
    fn kind(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".into(),
            Outcome::KeySetRefused(_) => "keyset refused".into(),
            Outcome::Rejected(e) => format!("rejected ({})", e.check()),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Accepted => f.write_str("accepted"),
            Outcome::KeySetRefused(why) => write!(f, "key set refused: {why}"),
            Outcome::Rejected(e) => write!(f, "rejected: {e}"),
        }
    }
}

/// Builds the key set, then parses and verifies `jws` with every algorithm allowed, so that
/// only the key and the token decide.
fn run(jwks: &Value, jws: &Value) -> Outcome {
    let keys = match KeySet::from_jwks(jwks, &Alg::ALL) {
        Ok(keys) => keys,
        Err(e) => return Outcome::KeySetRefused(e.to_string()),
    };
    // The "JsonSerialization" test stores a JSON-serialized JWS, an object: hand its text over,
    // as a caller would receive it.
    let text = match jws {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match Jws::parse(&text).and_then(|jws| jws.verify(&keys, &Alg::ALL).map(|_| ())) {
        Ok(()) => Outcome::Accepted,
        Err(e) => Outcome::Rejected(e),
    }
}

/// One test with the key set of its group.
struct Case {
    file: &'static str,
    group: String,
    jwks: Value,
    tc_id: u64,
    comment: String,
    jws: Value,
    valid: bool,
    flags: Vec<String>,
}

/// Every test of a vector file, each with its group's key set. `single_keys`: the JWS file's
/// groups hold one JWK each, the JWK file's groups a whole JWKS; either way the public half is
/// used when there is one, else the private one (shared secrets only have that).
#[expect(
    clippy::unwrap_used,
    reason = "test helper: malformed vector data must fail the test loudly"
)]
fn cases(file: &'static str, text: &str, single_keys: bool) -> (u64, Vec<Case>) {
    let data: Value = serde_json::from_str(text).unwrap();
    let mut out = Vec::new();
    for group in data["testGroups"].as_array().unwrap() {
        let key = group.get("public").unwrap_or(&group["private"]).clone();
        let jwks = if single_keys {
            json!({ "keys": [key] })
        } else {
            key
        };
        for test in group["tests"].as_array().unwrap() {
            let result = test["result"].as_str().unwrap();
            assert!(
                matches!(result, "valid" | "invalid"),
                "tcId {}: unexpected result {result}",
                test["tcId"]
            );
            out.push(Case {
                file,
                group: group["comment"].as_str().unwrap().to_owned(),
                jwks: jwks.clone(),
                tc_id: test["tcId"].as_u64().unwrap(),
                comment: test["comment"].as_str().unwrap().to_owned(),
                jws: test["jws"].clone(),
                valid: result == "valid",
                flags: test["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect(),
            });
        }
    }
    (data["numberOfTests"].as_u64().unwrap(), out)
}

/// Runs every case, prints counts per group and outcome, and returns the failures (all of
/// them, not just the first) and the outcomes by tcId.
fn run_all(cases: &[Case], mislabelled: &[(u64, &str)]) -> (Vec<String>, BTreeMap<u64, Outcome>) {
    let mut failures = Vec::new();
    let mut summary: BTreeMap<(String, &str, String), usize> = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for case in cases {
        let outcome = run(&case.jwks, &case.jws);
        let label = if case.valid { "valid" } else { "invalid" };
        let exception = mislabelled.iter().find(|(id, _)| *id == case.tc_id);
        // A mislabelled test must come out opposite to its label: that is the verifier being right.
        let want_accepted = case.valid != exception.is_some();
        if outcome.accepted() != want_accepted {
            failures.push(format!(
                "{} tcId {} ({}/{}, labelled {label}{}): {outcome}",
                case.file,
                case.tc_id,
                case.group,
                case.comment,
                exception.map_or(String::new(), |(_, why)| format!(", known mislabel: {why}")),
            ));
        }
        // Unsigned tokens must be refused for being unsigned, not by luck further on.
        if case.flags.iter().any(|f| f == "AlgIsNone")
            && !matches!(outcome, Outcome::Rejected(TokenError::AlgNone))
        {
            failures.push(format!(
                "{} tcId {}: alg none not refused as such: {outcome}",
                case.file, case.tc_id
            ));
        }
        let tag = if exception.is_some() {
            "mislabelled"
        } else {
            label
        };
        *summary
            .entry((case.group.clone(), tag, outcome.kind()))
            .or_default() += 1;
        outcomes.insert(case.tc_id, outcome);
    }
    println!("{:<24} {:<12} {:<22} count", "group", "label", "outcome");
    for ((group, label, kind), n) in &summary {
        println!("{group:<24} {label:<12} {kind:<22} {n}");
    }
    (failures, outcomes)
}

#[test]
fn json_web_signature_vectors() {
    let (declared, cases) = cases("json_web_signature_test.json", JWS_VECTORS, true);
    assert_eq!(declared, 401);
    assert_eq!(cases.len(), 401, "every test of the file is run");
    let (failures, outcomes) = run_all(&cases, &MISLABELLED);
    let valid = cases.iter().filter(|c| c.valid).count();
    let accepted = outcomes.values().filter(|o| o.accepted()).count();
    println!(
        "json_web_signature_test.json: {} tests, {valid} labelled valid, {accepted} accepted, {} mislabelled, {} failures",
        cases.len(),
        MISLABELLED.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} Wycheproof JWS failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // RFC 7520 Figure 27: ES512 on P-521 with the key's `alg` spelt `ES521`, with `use` and
    // with `key_ops`.
    for id in [347, 351] {
        assert!(outcomes[&id].accepted(), "tcId {id}: {}", outcomes[&id]);
    }
    for (id, _) in MISLABELLED {
        assert!(outcomes.contains_key(&id), "tcId {id} is in the file");
    }
}

#[test]
fn json_web_key_vectors() {
    let (declared, cases) = cases("json_web_key_test.json", JWK_VECTORS, false);
    assert_eq!(declared, 26);
    assert_eq!(cases.len(), 26, "every test of the file is run");
    let (failures, outcomes) = run_all(&cases, &[]);
    let accepted = outcomes.values().filter(|o| o.accepted()).count();
    println!(
        "json_web_key_test.json: {} tests, {} labelled valid, {accepted} accepted, {} failures",
        cases.len(),
        cases.iter().filter(|c| c.valid).count(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} Wycheproof JWK failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Recomputes the facts behind each `MISLABELLED` entry, so the exceptions stay honest.
#[test]
fn mislabels_are_what_we_say() {
    let (_, cases) = cases("json_web_signature_test.json", JWS_VECTORS, true);
    let case = |id: u64| cases.iter().find(|c| c.tc_id == id).unwrap();
    let token = |id: u64| case(id).jws.as_str().unwrap().to_owned();

    // 367 and 370: the same bytes as 357, which is labelled valid.
    assert!(case(357).valid);
    for id in [367, 370] {
        assert!(!case(id).valid);
        assert_eq!(token(id), token(357), "tcId {id}");
    }

    // 372 and 373: tcId 357 with a `?` inserted, and 357's MAC kept. HMAC-SHA256 of the signing
    // input, with the group's key, is not that MAC (while 357's own input does give it).
    let c = case(357);
    let secret = URL_SAFE_NO_PAD
        .decode(c.jwks["keys"][0]["k"].as_str().unwrap())
        .unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let mac_matches = |jws: &str| {
        let (input, mac) = jws.rsplit_once('.').unwrap();
        let mac = URL_SAFE_NO_PAD.decode(mac).unwrap();
        hmac::verify(&key, input.as_bytes(), &mac).is_ok()
    };
    assert!(mac_matches(&token(357)));
    for id in [372, 373] {
        assert!(case(id).valid);
        assert_eq!(case(id).jwks, c.jwks, "tcId {id}: same key as 357");
        assert_eq!(token(id).replacen('?', "", 1), token(357), "tcId {id}");
        assert!(!mac_matches(&token(id)), "tcId {id}");
    }

    // 346 and 350: a genuine PS384 signature by the group's key, refused only because the key
    // is pinned to PS256. Unpinned, the same key verifies it; pinned, the verifier says why.
    for id in [346, 350] {
        let c = case(id);
        assert!(c.valid);
        assert_eq!(c.jwks["keys"][0]["alg"], "PS256", "tcId {id}");
        let jws = token(id);
        let parsed = Jws::parse(&jws).unwrap();
        assert_eq!(parsed.header.alg, Alg::PS384, "tcId {id}");
        let mut unpinned = c.jwks.clone();
        unpinned["keys"][0].as_object_mut().unwrap().remove("alg");
        let keys = KeySet::from_jwks(&unpinned, &Alg::ALL).unwrap();
        assert!(parsed.verify(&keys, &Alg::ALL).is_ok(), "tcId {id}");
        let pinned = KeySet::from_jwks(&c.jwks, &Alg::ALL).unwrap();
        assert!(
            matches!(
                parsed.verify(&pinned, &Alg::ALL),
                Err(TokenError::KeyAlgMismatch {
                    alg: Alg::PS384,
                    ..
                })
            ),
            "tcId {id}"
        );
    }

    // The same file labels a genuine signature under a differently pinned key invalid: e.g.
    // tcId 340 ("UsingPS384", flag WrongPrimitive) is a PS384 token that the unpinned PS512
    // key verifies. So 346 and 350 contradict the file's own rule.
    let c = case(340);
    assert!(!c.valid && c.flags == ["WrongPrimitive"]);
    let jws = token(340);
    let parsed = Jws::parse(&jws).unwrap();
    assert_eq!(parsed.header.alg, Alg::PS384);
    let mut unpinned = c.jwks.clone();
    unpinned["keys"][0].as_object_mut().unwrap().remove("alg");
    let keys = KeySet::from_jwks(&unpinned, &Alg::ALL).unwrap();
    assert!(parsed.verify(&keys, &Alg::ALL).is_ok());
}
