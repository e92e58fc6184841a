//! Who the client is: `[esproxy-sensors]` → [`Sensors`] (names, passwords, allowed IPs) and
//! `[xff]` → [`XffConfig`] (which forwarding headers are believed). Both are read from their own
//! section only.

use std::collections::HashMap;

use crate::auth::{Sensor, Sensors};
use crate::client_ip::XffConfig;

use super::lookup::{Builder, Found};
use super::{value, ConfigError};

impl Builder<'_> {
    pub(super) fn sensors(&mut self) -> Result<Sensors, ConfigError> {
        let Some(section) = self.ini.section("esproxy-sensors") else {
            self.warn_at(
                None,
                None,
                "no [esproxy-sensors] section: every request will be refused (401)",
            );
            return Ok(Sensors::default());
        };
        let mut map = HashMap::new();
        for entry in section.effective() {
            let found = Found {
                section: "esproxy-sensors",
                entry,
            };
            if entry.value.is_empty() {
                self.warn(
                    &found,
                    "empty value: sensor not configured (set pass:SECRET and/or ip:IP,…)",
                );
                continue;
            }
            let sensor = Sensor::parse(&entry.value).map_err(|e| self.error(&found, e))?;
            if sensor.is_open() {
                self.warn(
                    &found,
                    "neither pass: nor ip: is set: anyone can use this sensor name",
                );
            }
            if entry.key.contains(':') {
                self.warn(
                    &found,
                    "a name containing `:` can never log in with Basic auth",
                );
            }
            map.insert(entry.key.clone(), sensor);
        }
        if map.is_empty() {
            self.warn_at(
                Some("esproxy-sensors"),
                Some(section.line),
                "no sensors configured: every request will be refused (401)",
            );
        }
        Ok(Sensors::new(map))
    }

    pub(super) fn xff(&mut self) -> Result<XffConfig, ConfigError> {
        if self.ini.section("xff").is_none() {
            return Ok(XffConfig::disabled());
        }
        let get = |key: &str| self.find_in(&["xff"], key);
        let enabled = self
            .parse_found(get("enabled"), value::boolean)?
            .is_some_and(|(b, _)| b);
        let text = |key: &str| {
            get(key)
                .and_then(|f| f.value().map(str::to_string))
                .unwrap_or_default()
        };
        let (header, internal, trusted) = (
            text("remoteIpHeader"),
            text("internalProxies"),
            text("trustedProxies"),
        );
        // Validate each value on its own so the error points at the right line.
        for (key, h, i, t) in [
            ("remoteIpHeader", header.as_str(), "", ""),
            ("internalProxies", "", internal.as_str(), ""),
            ("trustedProxies", "", "", trusted.as_str()),
        ] {
            if let (Err(e), Some(f)) = (XffConfig::new(enabled, h, i, t), get(key)) {
                return Err(self.error(&f, e));
            }
        }
        let cfg = XffConfig::new(enabled, &header, &internal, &trusted)
            .map_err(|e| self.error_at("xff", "enabled", e))?;
        if enabled && cfg.internal().is_empty() {
            if let Some(f) = get("enabled") {
                self.warn(
                    &f,
                    "internalProxies is empty: forwarding headers will never be used",
                );
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn open_or_empty_sensor_entries_and_a_missing_section_warn() {
        let (c, w) = ok(&format!("{ES}[esproxy-sensors]\nopen=;\nempty=\n"));
        assert!(c.sensors.get("open").is_some());
        assert!(c.sensors.get("empty").is_none());
        assert!(w
            .iter()
            .any(|w| w.key() == Some("open") && w.message().contains("anyone")));
        assert!(w.iter().any(|w| w.key() == Some("empty")));
        let (_, w) = ok(ES);
        assert!(w
            .iter()
            .any(|w| w.message().contains("no [esproxy-sensors]")));
    }

    #[test]
    fn later_duplicate_sensor_wins() {
        let (c, _) = ok(&format!("{ES}[esproxy-sensors]\na=pass:one\na=pass:two\n"));
        assert_eq!(c.sensors.get("a").unwrap().pass.as_deref(), Some("two"));
    }

    #[test]
    fn xff_section_is_read_and_its_errors_name_file_line_and_key() {
        let (c, _) = ok(&format!(
            "{ES}[xff]\nenabled=true\nremoteIpHeader=X-Real-IP\ninternalProxies=192.0.2.10\ntrustedProxies=198.51.100.0/24\n"
        ));
        assert!(c.xff.enabled());
        assert_eq!(c.xff.header_name(), "x-real-ip");
        let e = err(&format!(
            "{ES}[xff]\nenabled=true\ninternalProxies=10.0.0.(\n"
        ));
        assert!(
            e.starts_with(
                "conf/x.ini:5: [xff] internalProxies = \"10.0.0.(\": internalProxies: neither"
            ),
            "{e}"
        );
        let (_, w) = ok(&format!("{ES}[xff]\nenabled=true\n"));
        assert!(w
            .iter()
            .any(|w| w.message().contains("internalProxies is empty")));
    }
}
