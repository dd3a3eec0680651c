//! GitHub's device flow as the stand-in serves it: `POST /login/device/code`
//! hands out a device code and a user code; the person enters the user code
//! at `GET /login/device` and approves or refuses; the device polls the token
//! endpoint with the device-code grant and gets GitHub's answers
//! (`authorization_pending`, `slow_down` with a longer `interval`,
//! `expired_token`, `access_denied`, then the token once).

use super::*;

/// The device-code grant's `grant_type`.
pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// What `slow_down` adds to a device's interval (GitHub: 5 seconds).
const SLOW_DOWN_STEP: u64 = 5;
/// The letters of user codes (GitHub's: no vowels, no look-alikes).
const USER_CODE_LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A device code handed out and not yet spent.
pub(crate) struct Device {
    user_code: String,
    scopes: Vec<String>,
    created: Instant,
    lifetime: Duration,
    interval: u64,
    last_poll: Option<Instant>,
    status: DeviceStatus,
}

#[derive(Clone, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    /// A token was issued for it.
    Spent,
}

/// How device codes are handed out: GitHub's 15 minutes and 5 seconds,
/// unless a test changes them.
pub(crate) struct DeviceSettings {
    pub(crate) lifetime: Duration,
    pub(crate) interval: u64,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(900),
            interval: 5,
        }
    }
}

/// `XXXX-XXXX` from [`USER_CODE_LETTERS`], as people type it: any case,
/// with or without the dash.
fn normalize_user_code(typed: &str) -> String {
    let letters: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match letters.len() {
        8 => format!("{}-{}", &letters[..4], &letters[4..]),
        _ => letters,
    }
}

impl GithubStandIn {
    /// `POST /login/device/code`.
    pub(crate) fn device_code(&self, p: &Params) -> Response {
        if p.get("client_id") != Some(self.inner.client_id.as_str()) {
            return json_response(StatusCode::NOT_FOUND, &json!({"error": "Not Found"}));
        }
        let device_code = self.random_hex(40);
        let user_code = {
            let bytes = rand::random::<[u8; 8]>();
            let letters: String = bytes
                .iter()
                .map(|b| USER_CODE_LETTERS[usize::from(*b) % USER_CODE_LETTERS.len()] as char)
                .collect();
            format!("{}-{}", &letters[..4], &letters[4..])
        };
        let mut st = self.lock();
        st.devices.retain(|_, d| d.created.elapsed() <= d.lifetime);
        let status = if st.deny {
            DeviceStatus::Denied
        } else {
            st.auto_consent
                .clone()
                .map_or(DeviceStatus::Pending, DeviceStatus::Approved)
        };
        let device = Device {
            user_code: user_code.clone(),
            scopes: split_scopes(p.get("scope").unwrap_or("")),
            created: Instant::now(),
            lifetime: st.device.lifetime,
            interval: st.device.interval,
            last_poll: None,
            status,
        };
        let answer = json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{}/login/device", st.base_url),
            "expires_in": device.lifetime.as_secs_f64().ceil() as u64,
            "interval": device.interval,
        });
        st.devices.insert(device_code, device);
        json_response(StatusCode::OK, &answer)
    }

    /// The token endpoint with the device-code grant.
    pub(crate) fn device_token(&self, p: &Params) -> Response {
        if p.get("client_id") != Some(self.inner.client_id.as_str()) {
            return token_error(
                "incorrect_client_credentials",
                "The client_id passed is incorrect.",
                "#incorrect-client-credentials",
            );
        }
        let mut st = self.lock();
        let Some(device) = p.get("device_code").and_then(|c| st.devices.get_mut(c)) else {
            return token_error(
                "incorrect_device_code",
                "The device_code provided is not valid.",
                "#incorrect-device-code",
            );
        };
        if device.created.elapsed() > device.lifetime {
            return token_error(
                "expired_token",
                "The device code has expired.",
                "#expired-token",
            );
        }
        let now = Instant::now();
        let too_soon = device
            .last_poll
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(device.interval));
        device.last_poll = Some(now);
        if too_soon {
            device.interval += SLOW_DOWN_STEP;
            return json_response(
                StatusCode::OK,
                &json!({
                    "error": "slow_down",
                    "error_description": "Too many requests have been made in the same timeframe.",
                    "error_uri": format!("{TOKEN_ERRORS}/#slow-down"),
                    "interval": device.interval,
                }),
            );
        }
        let login = match &device.status {
            DeviceStatus::Pending => {
                return token_error(
                    "authorization_pending",
                    "The authorization request is still pending.",
                    "#authorization-pending",
                );
            }
            DeviceStatus::Denied => {
                return token_error(
                    "access_denied",
                    "The authorization request was denied.",
                    "#access-denied",
                );
            }
            DeviceStatus::Spent => {
                return token_error(
                    "incorrect_device_code",
                    "The device_code provided is not valid.",
                    "#incorrect-device-code",
                );
            }
            DeviceStatus::Approved(login) => login.clone(),
        };
        device.status = DeviceStatus::Spent;
        let scopes = device.scopes.clone();
        drop(st);
        self.issue_token(&login, &scopes)
    }

    /// `GET /login/device`: the page where a person enters a user code.
    pub(crate) fn device_page(&self, typed: Option<&str>) -> Response {
        let st = self.lock();
        html_page(
            StatusCode::OK,
            &DevicePage {
                user_code: typed.map(normalize_user_code).unwrap_or_default(),
                people: &st.db.users,
            },
        )
    }

    /// `POST /login/device`: `user_code` with `login=<person>` or `cancel`.
    pub(crate) fn device_decide(&self, p: &Params) -> Response {
        let typed = p.get("user_code").unwrap_or("");
        let decision = if p.get("cancel").is_some() {
            None
        } else if let Some(login) = p.get("login").filter(|l| !l.is_empty()) {
            Some(login.to_owned())
        } else {
            return self.device_page(Some(typed));
        };
        let approving = decision.is_some();
        match self.decide_device(typed, decision) {
            Ok(()) if approving => message_page(
                StatusCode::OK,
                "Device activated · GitHub",
                "Congratulations, you're all set!",
                "Your device is now connected.",
                None,
            ),
            Ok(()) => message_page(
                StatusCode::OK,
                "Access denied · GitHub",
                "Access denied",
                "The device was not given access.",
                None,
            ),
            Err(why) => message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Device activation · GitHub",
                why,
                "The code entered was",
                Some(typed),
            ),
        }
    }

    /// Approves (as `login`) or refuses (`None`) the pending device whose
    /// user code is `typed`.
    fn decide_device(&self, typed: &str, login: Option<String>) -> Result<(), &'static str> {
        let code = normalize_user_code(typed);
        let mut st = self.lock();
        let status = match login {
            None => DeviceStatus::Denied,
            Some(login) => match st.db.find_user(&login) {
                Some(user) => DeviceStatus::Approved(user.login.clone()),
                None => return Err("There is nobody in the stand-in's world with that login."),
            },
        };
        let device = st
            .devices
            .values_mut()
            .find(|d| d.user_code == code && d.created.elapsed() <= d.lifetime)
            .ok_or("That code is not valid or has expired.")?;
        if device.status != DeviceStatus::Pending {
            return Err("That code was used already.");
        }
        device.status = status;
        Ok(())
    }

    /// Approves the device with `user_code` as `login`, as the person would
    /// on `/login/device`; false if no pending device has that code.
    pub fn approve_device(&self, user_code: &str, login: &str) -> bool {
        self.decide_device(user_code, Some(login.to_owned()))
            .is_ok()
    }

    /// Refuses the device with `user_code`; false if no pending device has it.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.decide_device(user_code, None).is_ok()
    }

    /// Device codes handed out from now on live `lifetime` and ask for
    /// polls `interval` seconds apart (GitHub: 15 minutes, 5 seconds).
    pub fn set_device_timing(&self, lifetime: Duration, interval: u64) {
        self.lock().device = DeviceSettings { lifetime, interval };
    }
}

/// The device activation page.
#[derive(Template)]
#[template(path = "device.html")]
pub(crate) struct DevicePage<'a> {
    user_code: String,
    people: &'a [UserRecord],
}
