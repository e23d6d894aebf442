//! Broker errors, expressed with AMQP 0-9-1 reply codes.
//!
//! RabbitMQ's reply codes are the vocabulary every client library already
//! understands, so the core uses them directly. Protocol adapters map them: AMQP
//! closes a channel or connection with the code, STOMP sends an ERROR frame quoting
//! it, MQTT disconnects or returns a failure reason.

use std::fmt;

/// AMQP 0-9-1 reply codes (the ones the broker emits).
pub mod code {
    pub const REPLY_SUCCESS: u16 = 200;
    pub const CONTENT_TOO_LARGE: u16 = 311;
    pub const NO_ROUTE: u16 = 312;
    pub const NO_CONSUMERS: u16 = 313;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const INVALID_PATH: u16 = 402;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;

    /// The symbolic name RabbitMQ puts in front of its reply texts.
    pub fn name(code: u16) -> &'static str {
        match code {
            REPLY_SUCCESS => "OK",
            CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
            NO_ROUTE => "NO_ROUTE",
            NO_CONSUMERS => "NO_CONSUMERS",
            CONNECTION_FORCED => "CONNECTION_FORCED",
            INVALID_PATH => "INVALID_PATH",
            ACCESS_REFUSED => "ACCESS_REFUSED",
            NOT_FOUND => "NOT_FOUND",
            RESOURCE_LOCKED => "RESOURCE_LOCKED",
            PRECONDITION_FAILED => "PRECONDITION_FAILED",
            FRAME_ERROR => "FRAME_ERROR",
            SYNTAX_ERROR => "SYNTAX_ERROR",
            COMMAND_INVALID => "COMMAND_INVALID",
            CHANNEL_ERROR => "CHANNEL_ERROR",
            UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            RESOURCE_ERROR => "RESOURCE_ERROR",
            NOT_ALLOWED => "NOT_ALLOWED",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            _ => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the whole connection; soft ones only the channel.
    pub fn is_hard(code: u16) -> bool {
        matches!(
            code,
            CONNECTION_FORCED
                | INVALID_PATH
                | FRAME_ERROR
                | SYNTAX_ERROR
                | COMMAND_INVALID
                | CHANNEL_ERROR
                | UNEXPECTED_FRAME
                | RESOURCE_ERROR
                | NOT_ALLOWED
                | NOT_IMPLEMENTED
                | INTERNAL_ERROR
        )
    }
}

/// An error from a broker operation: a reply code and a human-readable text
/// (without the symbolic prefix, which adapters add).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerError {
    pub code: u16,
    pub text: String,
}

impl BrokerError {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        BrokerError {
            code,
            text: text.into(),
        }
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(code::NOT_FOUND, text)
    }

    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(code::ACCESS_REFUSED, text)
    }

    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(code::PRECONDITION_FAILED, text)
    }

    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(code::RESOURCE_LOCKED, text)
    }

    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(code::NOT_IMPLEMENTED, text)
    }

    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(code::COMMAND_INVALID, text)
    }

    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(code::NOT_ALLOWED, text)
    }

    /// 320: the broker closes the connection (management, a deleted vhost
    /// or user).
    pub fn connection_forced(text: impl Into<String>) -> Self {
        Self::new(code::CONNECTION_FORCED, text)
    }

    /// The text as RabbitMQ sends it: `NOT_FOUND - no queue 'q' in vhost '/'`.
    /// An empty text gives the bare name (`INTERNAL_ERROR`), as RabbitMQ
    /// sends it when a channel process crashed.
    pub fn reply_text(&self) -> String {
        if self.text.is_empty() {
            return code::name(self.code).to_string();
        }
        format!("{} - {}", code::name(self.code), self.text)
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reply_text())
    }
}

impl std::error::Error for BrokerError {}

pub type Result<T> = std::result::Result<T, BrokerError>;
