//! AMQP error scopes: a soft error closes the channel, a hard one the connection.

use warren_core::error::code;
use warren_core::BrokerError;

/// An error raised while handling a frame, with the method that caused it (sent
/// back in channel.close / connection.close).
#[derive(Debug)]
pub struct AmqpError {
    pub error: BrokerError,
    pub class_id: u16,
    pub method_id: u16,
    /// Close the whole connection rather than the channel.
    pub hard: bool,
}

impl AmqpError {
    pub fn channel(error: BrokerError, class_id: u16, method_id: u16) -> Self {
        let hard = code::is_hard(error.code);
        AmqpError {
            error,
            class_id,
            method_id,
            hard,
        }
    }

    pub fn connection(code: u16, text: impl Into<String>, class_id: u16, method_id: u16) -> Self {
        AmqpError {
            error: BrokerError::new(code, text),
            class_id,
            method_id,
            hard: true,
        }
    }
}
