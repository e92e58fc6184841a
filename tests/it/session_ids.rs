//! Session ids (issue #11): in strict mode a sensor writes sessions only under ids its own
//! capture could have produced, so it cannot overwrite another sensor's sessions written with
//! consistent ids (`autoGenerateId=consistent`: `<S>-<node>-<fileNum>-<pos>`), in any rotation,
//! whether one name is a prefix of the other or not, even when the id also has the 24-character
//! random shape. Random and sequential ids carry no node name: the proxy cannot tell whose they
//! are, so a session `index` under one goes to ES as `create` and the first writer keeps the
//! id (README, "Migrating from esProxy.js").

use crate::fleet_ini;
use crate::harness::{action_line, basic, gzip, session_doc, Osmem, Proxy, Response};

const INDEX: &str = "arkime_sessions3-260819";
const HOURLY: &str = "arkime_sessions3-260819h06";

/// (index, id) of the victim's sessions, one per consistent id form capture writes.
fn victim_ids(victim: &str) -> Vec<(&'static str, String)> {
    vec![
        (INDEX, format!("260819-{victim}-42468-33456471984")),
        (INDEX, format!("260819-{victim}-1-0")),
        (HOURLY, format!("260819h06-{victim}-7-100")),
        // Consistent, and exactly 24 characters after the date: also the random shape.
        (INDEX, format!("260819-{victim}-{}", tail_to_24(victim))),
    ]
}

/// `<fileNum>-<pos>` that makes `<victim>-<fileNum>-<pos>` exactly 24 characters.
fn tail_to_24(victim: &str) -> String {
    let pos_len = 24 - victim.len() - "-1-".len();
    format!("1-{}", "7".repeat(pos_len))
}

fn bulk(pairs: &[(&str, String)], node: &str) -> Vec<u8> {
    let mut b = String::new();
    for (i, (index, id)) in pairs.iter().enumerate() {
        b.push_str(&action_line(index, id));
        b.push('\n');
        b.push_str(&session_doc(node, i));
        b.push('\n');
    }
    b.into_bytes()
}

/// The stored document, or None.
fn stored(es: &Osmem, index: &str, id: &str) -> Option<serde_json::Value> {
    let r = es.req("GET", &format!("/{index}/_doc/{id}"), b"");
    (r.status == 200).then(|| r.json()["_source"].clone())
}

fn attack(victim: (&str, &str), attacker: (&str, &str)) {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let ids = victim_ids(victim.0);
    let r = p.req(victim.1, "POST", "/_bulk", &bulk(&ids, victim.0));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(r#""errors":true"#), "{}", r.text());
    let before: Vec<serde_json::Value> = ids
        .iter()
        .map(|(index, id)| stored(&es, index, id).expect("victim's session stored"))
        .collect();
    for (index, id) in &ids {
        let one = [(*index, id.clone())];
        let r = p.req(attacker.1, "POST", "/_bulk", &bulk(&one, attacker.0));
        assert_eq!(
            r.status,
            400,
            "{} overwrote {}'s {id}: {}",
            attacker.0,
            victim.0,
            r.text()
        );
        // The same document under an id of the attacker's own is fine (the request is
        // refused for the id alone).
        let own = [(
            *index,
            format!("{}-{}-1-2", id.split('-').next().unwrap(), attacker.0),
        )];
        let r = p.req(attacker.1, "POST", "/_bulk", &bulk(&own, attacker.0));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for ((index, id), was) in ids.iter().zip(&before) {
        let now = stored(&es, index, id).expect("victim's session still there");
        assert_eq!(&now, was, "{index}/{id} changed");
        assert_eq!(now["node"], victim.0);
    }
}

#[test]
fn a_sensor_cannot_overwrite_sessions_of_a_sensor_whose_name_extends_its_own() {
    attack(
        ("toronto011", "toronto011:secret2"),
        ("toronto01", "toronto01:secret1"),
    );
}

#[test]
fn a_sensor_cannot_overwrite_sessions_of_a_sensor_whose_name_is_its_prefix() {
    attack(
        ("toronto01", "toronto01:secret1"),
        ("toronto011", "toronto011:secret2"),
    );
}

const A: (&str, &str) = ("toronto01", "toronto01:secret1");
const B: (&str, &str) = ("toronto011", "toronto011:secret2");

/// A's sessions in each id form capture writes: random (`autoGenerateId=false`, the default),
/// sequential (a per-thread counter: consecutive ids) and consistent.
fn a_sessions() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("random", INDEX, "260819-XyFr4-nVi-Pfro7SVr4ix4J5".into()),
        (
            "random",
            HOURLY,
            "260819h06-WWSi0G31l_1FZa0sRBOKafQW".into(),
        ),
        (
            "sequential",
            INDEX,
            "260819-AAEYpQNf3gcAAAAAAAAAAAAB".into(),
        ),
        (
            "sequential",
            INDEX,
            "260819-AAEYpQNf3gcAAAAAAAAAAAAC".into(),
        ),
        (
            "consistent",
            INDEX,
            "260819-toronto01-42468-33456471984".into(),
        ),
        (
            "consistent",
            HOURLY,
            format!("260819h06-toronto01-{}", tail_to_24("toronto01")),
        ),
    ]
}

/// Every item of a bulk answer: (status, error type).
fn items(r: &Response) -> Vec<(u64, String)> {
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let (_, v) = i.as_object().unwrap().iter().next().unwrap();
            (
                v["status"].as_u64().unwrap(),
                v["error"]["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The stored document with its version.
fn stored_v(es: &Osmem, index: &str, id: &str) -> Option<(serde_json::Value, u64)> {
    let r = es.req("GET", &format!("/{index}/_doc/{id}"), b"");
    (r.status == 200).then(|| {
        (
            r.json()["_source"].clone(),
            r.json()["_version"].as_u64().unwrap(),
        )
    })
}

fn bulk_of(sessions: &[(&str, &str, String)], node: &str, first_doc: usize) -> Vec<u8> {
    let pairs: Vec<(&str, String)> = sessions.iter().map(|(_, i, id)| (*i, id.clone())).collect();
    let mut b = String::new();
    for (k, (index, id)) in pairs.iter().enumerate() {
        b.push_str(&action_line(index, id));
        b.push('\n');
        b.push_str(&session_doc(node, first_doc + k));
        b.push('\n');
    }
    b.into_bytes()
}

/// Issue #11's done criterion: B knows A's session ids (random, sequential, consistent) and
/// `index`es its own documents under them, plain and gzip, alone and mixed with its own new
/// sessions. A's documents stay byte for byte what A wrote (same `_version`: no write reached
/// them), B's own new sessions land, and A keeps writing normally.
#[test]
fn a_sensor_cannot_overwrite_another_sensors_sessions_of_any_id_form() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let mine = a_sessions();
    let r = p.req(A.1, "POST", "/_bulk", &bulk_of(&mine, A.0, 0));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false, "{}", r.text());
    let before: Vec<(serde_json::Value, u64)> = mine
        .iter()
        .map(|(_, index, id)| stored_v(&es, index, id).expect("A's session stored"))
        .collect();

    let nameless: Vec<_> = mine
        .iter()
        .filter(|s| s.0 != "consistent")
        .cloned()
        .collect();
    // B's own new session, written alongside (capture's random form).
    let b_own = (
        "random",
        INDEX,
        "260819-Bq0wnSess10n-00000000001".to_string(),
    );
    let mut mixed = nameless.clone();
    mixed.insert(1, b_own.clone());
    for (what, body, gz) in [
        ("plain", bulk_of(&nameless, B.0, 100), false),
        ("gzip", bulk_of(&nameless, B.0, 200), true),
        ("mixed", bulk_of(&mixed, B.0, 300), false),
    ] {
        let r = if gz {
            p.gzip_bulk(&basic(B.1), &gzip(&body))
        } else {
            p.req(B.1, "POST", "/_bulk", &body)
        };
        // ES took the request; every item under A's ids was refused as already existing.
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.json()["errors"], true, "{what}: {}", r.text());
        for (k, (status, error)) in items(&r).into_iter().enumerate() {
            if what == "mixed" && k == 1 {
                assert_eq!(status, 201, "{what}: B's own session: {}", r.text());
            } else {
                assert_eq!(status, 409, "{what} item {k}: {}", r.text());
                assert_eq!(error, "version_conflict_engine_exception");
            }
        }
    }
    // Consistent ids name A: the whole bulk is refused before ES sees it.
    for s in mine.iter().filter(|s| s.0 == "consistent") {
        let r = p.req(
            B.1,
            "POST",
            "/_bulk",
            &bulk_of(std::slice::from_ref(s), B.0, 400),
        );
        assert_eq!(r.status, 400, "{}: {}", s.2, r.text());
    }

    for ((what, index, id), was) in mine.iter().zip(&before) {
        let now = stored_v(&es, index, id).expect("A's session still there");
        assert_eq!(&now, was, "{what} {index}/{id} changed");
        assert_eq!(now.0["node"], A.0);
    }
    let (own, _) = stored_v(&es, INDEX, &b_own.2).expect("B's own session landed");
    assert_eq!(own["node"], B.0);

    // A carries on: new sessions in every form, and its consistent ids written again (a pcap
    // file imported twice) still go through as `index`.
    let next = vec![
        (
            "random",
            INDEX,
            "260819-NextRandomSession0000001".to_string(),
        ),
        (
            "sequential",
            INDEX,
            "260819-AAEYpQNf3gcAAAAAAAAAAAAD".to_string(),
        ),
        ("consistent", INDEX, "260819-toronto01-42469-24".to_string()),
    ];
    let again: Vec<_> = mine
        .iter()
        .filter(|s| s.0 == "consistent")
        .cloned()
        .collect();
    for (what, batch) in [("next", next.clone()), ("re-import", again.clone())] {
        let r = p.req(A.1, "POST", "/_bulk", &bulk_of(&batch, A.0, 500));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.json()["errors"], false, "{what}: {}", r.text());
    }
    for (_, index, id) in &again {
        let (_, version) = stored_v(&es, index, id).unwrap();
        assert_eq!(version, 2, "{id} re-imported with index");
    }
}

/// Lax mode is esProxy.js: lines go to ES as sent, so there the same attack replaces A's
/// random-id session (what strict mode's `create` prevents).
#[test]
fn lax_mode_forwards_index_as_sent_and_the_last_writer_wins() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyStrict=false"), "default");
    let one = vec![(
        "random",
        INDEX,
        "260819-XyFr4-nVi-Pfro7SVr4ix4J5".to_string(),
    )];
    let r = p.req(A.1, "POST", "/_bulk", &bulk_of(&one, A.0, 0));
    assert_eq!(r.json()["errors"], false, "{}", r.text());
    let r = p.req(B.1, "POST", "/_bulk", &bulk_of(&one, B.0, 1));
    assert_eq!(r.json()["errors"], false, "{}", r.text());
    let (now, version) = stored_v(&es, INDEX, &one[0].2).unwrap();
    assert_eq!(now["node"], B.0);
    assert_eq!(version, 2);
}
