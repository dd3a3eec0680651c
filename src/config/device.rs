//! `[device]`: GitHub's device flow for apps without a browser
//! (`POST /auth/device`, `POST /auth/device/token`).

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S};

/// `[device]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Whether the device flow's routes answer; off, they are 404 like any
    /// unknown path.
    pub enabled: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[device]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawDevice {
    enabled: Option<bool>,
}

/// `[device]` read, checked and built; `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<DeviceConfig> {
    let raw: RawDevice = p.section("device", value)?;
    Some(DeviceConfig {
        enabled: raw.enabled.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn the_device_flow_is_on_unless_turned_off() {
        assert!(parse(MINIMAL).unwrap().device.enabled);
        let off = parse(&format!("{MINIMAL}\n[device]\nenabled = false\n")).unwrap();
        assert!(!off.device.enabled);
        let p = only_problem(&format!("{MINIMAL}\n[device]\nenabled = \"no\"\n"));
        assert_eq!(p.key, "device.enabled");
        let p = only_problem(&format!("{MINIMAL}\n[device]\nenable = false\n"));
        assert_eq!(p.key, "device.enable");
    }
}
