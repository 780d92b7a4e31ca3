//! Shared broadcast subscriptions (opt-in with `fanout`).
//!
//! When several sessions subscribe to the same broadcast destination under the same broker
//! identity and vhost, the gateway holds ONE broker subscription for them, on one shared broker
//! connection per identity, and copies each MESSAGE to every member with `subscription` set to
//! the member's own id. The broker then does one delivery per message instead of one per page.
//!
//! | part | owns |
//! |---|---|
//! | [`rules`] | which SUBSCRIBE may be shared (pure) |
//! | [`hub`] | the shared subscriptions and their members; copying a MESSAGE to each |
//! | [`link`] | the shared broker connection's task |
//! | [`member`] | a session's side: its shared subscription ids and its bounded queue |
//!
//! Unlike the per-session path, where a slow page slows its own broker connection (and the
//! broker's flow control applies), a shared subscription cannot wait for its slowest member:
//! each member has a bounded queue (`fanout_queue` messages), and a member whose queue is full
//! is ended with `ERROR too slow: N messages behind`. The others never wait.

pub mod hub;
mod link;
pub mod member;
mod metrics;
pub mod rules;

pub use hub::{BrokerKey, FanoutHub};
pub use member::{Member, MemberEnd, MemberRx};
pub use rules::{is_broadcast, shareable};

#[cfg(test)]
mod tests {
    use crate::config::{Config, Options};

    fn resolve(toml_text: &str) -> Result<Config, String> {
        let file: Options = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let o = Options {
            upstream: Some(vec!["127.0.0.1:61613".into()]),
            upstream_login: Some("u".into()),
            upstream_passcode: Some(crate::config::Secret::new("p")),
            ..Options::default()
        };
        Config::resolve(o.merge(file)).map_err(|e| e.to_string())
    }

    #[test]
    fn fanout_is_off_by_default_and_configured_from_toml() {
        let off = resolve("").unwrap();
        assert!(off.fanout.is_empty());
        assert_eq!(off.fanout_queue, 1000);
        let on = resolve("fanout = [\"/exchange/Fanout*\", \"/topic/**\"]\nfanout_queue = 50\n")
            .unwrap();
        assert_eq!(on.fanout, ["/exchange/Fanout*", "/topic/**"]);
        assert_eq!(on.fanout_queue, 50);
    }

    #[test]
    fn fanout_flags_take_a_comma_separated_list() {
        use clap::Parser;
        let o = Options::try_parse_from([
            "stompgate",
            "--fanout-destination",
            "/exchange/A,/topic/**",
            "--fanout-queue",
            "7",
        ])
        .unwrap();
        assert_eq!(o.fanout.unwrap(), ["/exchange/A", "/topic/**"]);
        assert_eq!(o.fanout_queue, Some(7));
    }

    #[test]
    fn bad_fanout_settings_name_the_field() {
        let err = resolve("fanout = [\"topic/x\"]\n").unwrap_err();
        assert!(err.contains("fanout"), "{err}");
        let err = resolve("fanout_queue = 0\n").unwrap_err();
        assert!(err.contains("fanout_queue"), "{err}");
    }
}
