//! Names that reach a command line: compose project (stack) names and service names.
//!
//! No shell is involved, but a name is still an argument: one that starts with `-` would be
//! read as an option, and one that compose would normalise (`My App` → `myapp`) would address
//! a different project than the directory it came from.

use crate::StacksError;

/// Compose's project-name rules: only lowercase letters, digits, dashes and underscores, and
/// the first character a letter or digit.
pub(crate) fn check_stack_name(name: &str) -> Result<(), StacksError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        Some("it must begin with a lowercase letter or a digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("only lowercase letters, digits, dashes and underscores are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(StacksError::InvalidName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// The compose specification's service-name pattern (`[a-zA-Z0-9._-]+`), minus a leading
/// dash, which a command line would take for an option.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) fn check_service_name(stack: &str, service: &str) -> Result<(), StacksError> {
    let why = if service.is_empty() {
        Some("it is empty")
    } else if service.starts_with('-') {
        Some("it must not begin with a dash")
    } else if !service
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("only letters, digits, dots, dashes and underscores are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(StacksError::InvalidService {
            stack: stack.to_owned(),
            service: service.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_follow_compose_project_rules() {
        for good in ["app", "nextcloud", "0day", "my-app_2", "a", "x--y__z"] {
            assert!(check_stack_name(good).is_ok(), "{good} should be valid");
        }
        for (bad, rule) in [
            ("", "empty"),
            ("-app", "begin with"),
            ("_app", "begin with"),
            ("App", "begin with"),
            ("my App", "only lowercase"),
            ("myApp", "only lowercase"),
            ("app;rm -rf", "only lowercase"),
            ("app.v2", "only lowercase"),
            ("../etc", "begin with"),
            ("a/b", "only lowercase"),
            ("nextcloud\n", "only lowercase"),
            ("ünicode", "begin with"),
        ] {
            match check_stack_name(bad) {
                Err(StacksError::InvalidName { name, why }) => {
                    assert_eq!(name, bad);
                    assert!(why.contains(rule), "{bad:?}: {why}");
                }
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_message_names_the_culprit() {
        let err = check_stack_name("Bad Name").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid stack name \"Bad Name\": it must begin with a lowercase letter or a digit"
        );
    }

    #[test]
    fn service_names_follow_the_compose_spec() {
        for good in ["db", "Web", "web.1", "_worker", "a-b_c"] {
            assert!(
                check_service_name("app", good).is_ok(),
                "{good} should be valid"
            );
        }
        for bad in ["", "-d", "--no-deps", "a b", "a/b", "a;b", "a\tb"] {
            match check_service_name("app", bad) {
                Err(StacksError::InvalidService { stack, service, .. }) => {
                    assert_eq!((stack.as_str(), service.as_str()), ("app", bad));
                }
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
        }
    }
}
