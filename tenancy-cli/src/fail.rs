//! How a command fails: a message for standard error and the exit status.

/// A failed command. `code` 1: the work failed; 2: the command was used wrongly and nothing
/// was attempted.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    /// The work failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// The command was used wrongly; nothing was attempted.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<tenancy::Error> for Fail {
    fn from(e: tenancy::Error) -> Self {
        let mut message = e.to_string();
        if let tenancy::Error::RegistryNotInstalled(_) = e {
            message.push_str(" (run `tenancy registry install` first)");
        }
        // Malformed input the library refused before touching anything is a usage error.
        let code = match e {
            tenancy::Error::Invalid(_) | tenancy::Error::InvalidName(_) => 2,
            _ => 1,
        };
        Self { code, message }
    }
}
