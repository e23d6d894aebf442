//! Why a method frame's payload could not be turned into a [`Method`](super::Method).

use super::method::{method_name, reply_code};
use std::fmt;

/// The two ways decoding method arguments fails. They map to different AMQP reply
/// codes, so the frame decoder needs to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodDecodeError {
    /// No such (class, method) pair in AMQP 0-9-1 or RabbitMQ's extensions.
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A known method whose arguments are truncated, followed by extra bytes, or
    /// contain an undecodable field table.
    Malformed {
        class_id: u16,
        method_id: u16,
        reason: &'static str,
    },
}

impl MethodDecodeError {
    /// The reply code to close the connection with.
    ///
    /// RabbitMQ answers malformed arguments with 501 FRAME_ERROR ("cannot decode
    /// ..."), so we do too. For an unknown method id RabbitMQ 3.10 has no answer: its
    /// reader process crashes (`unknown_method_id`) and the socket is reset. We close
    /// cleanly with 540 NOT_IMPLEMENTED instead, which is what the spec's description
    /// of that code ("the client tried to use functionality that is not implemented")
    /// fits best.
    pub fn reply_code(&self) -> u16 {
        match self {
            MethodDecodeError::UnknownMethod { .. } => reply_code::NOT_IMPLEMENTED,
            MethodDecodeError::Malformed { .. } => reply_code::FRAME_ERROR,
        }
    }

    pub fn class_id(&self) -> u16 {
        match *self {
            MethodDecodeError::UnknownMethod { class_id, .. }
            | MethodDecodeError::Malformed { class_id, .. } => class_id,
        }
    }

    pub fn method_id(&self) -> u16 {
        match *self {
            MethodDecodeError::UnknownMethod { method_id, .. }
            | MethodDecodeError::Malformed { method_id, .. } => method_id,
        }
    }
}

impl fmt::Display for MethodDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MethodDecodeError::UnknownMethod {
                class_id,
                method_id,
            } => write!(f, "unknown method {class_id}.{method_id}"),
            MethodDecodeError::Malformed {
                class_id,
                method_id,
                reason,
            } => match method_name(class_id, method_id) {
                Some(name) => write!(f, "cannot decode {name} arguments: {reason}"),
                None => write!(f, "cannot decode method {class_id}.{method_id}: {reason}"),
            },
        }
    }
}

impl std::error::Error for MethodDecodeError {}
