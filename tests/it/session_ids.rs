//! Session ids (issue #11): in strict mode a sensor writes sessions only under ids its own
//! capture could have produced, so it cannot overwrite another sensor's sessions written with
//! consistent ids (`autoGenerateId=consistent`: `<S>-<node>-<fileNum>-<pos>`), in any rotation,
//! whether one name is a prefix of the other or not, even when the id also has the 24-character
//! random shape. Random and sequential ids carry no node name: the proxy cannot tell whose they
//! are (README, "Migrating from esProxy.js").

use crate::fleet_ini;
use crate::harness::{action_line, session_doc, Osmem, Proxy};

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
