//! App names: validation and generated names.

use rand::seq::SliceRandom;
use rand::Rng;

/// Why an app name is refused; the text is the API's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    #[error("App name must start with a lowercase letter, contain only lowercase letters, digits and hyphens, end with a letter or digit, and be 5 to 63 characters long (got \"{0}\").")]
    Invalid(String),
    #[error("App name \"{0}\" is reserved.")]
    Reserved(String),
}

const RESERVED: &[&str] = &["drycc", "kube", "default"];

/// `^[a-z][a-z0-9-]{3,}[a-z0-9]$`, 5..63 characters, not reserved
/// (`drycc`, `drycc-*`, `kube`, `kube-*`, `default`).
pub fn validate_app_name(name: &str) -> Result<(), AppNameError> {
    let bytes = name.as_bytes();
    let shape_ok = (5..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !shape_ok {
        return Err(AppNameError::Invalid(name.chars().take(80).collect()));
    }
    let reserved =
        RESERVED.contains(&name) || name.starts_with("drycc-") || name.starts_with("kube-");
    if reserved {
        return Err(AppNameError::Reserved(name.to_string()));
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "ablest",
    "absurd",
    "actual",
    "allied",
    "artful",
    "atomic",
    "august",
    "bamboo",
    "benign",
    "bonded",
    "boring",
    "bovine",
    "breezy",
    "bright",
    "brisk",
    "bronze",
    "candid",
    "chalky",
    "cheery",
    "chubby",
    "clever",
    "cloudy",
    "cosmic",
    "crafty",
    "dapper",
    "dainty",
    "decent",
    "dreamy",
    "dulcet",
    "earthy",
    "easygoing",
    "exotic",
    "famous",
    "fierce",
    "frisky",
    "frozen",
    "gentle",
    "gifted",
    "glossy",
    "golden",
    "hearty",
    "humble",
    "hungry",
    "jovial",
    "kindly",
    "lively",
    "lucky",
    "marble",
    "mellow",
    "modest",
    "nimble",
    "odd",
    "orange",
    "placid",
    "polite",
    "quirky",
    "rugged",
    "scenic",
    "serene",
    "shiny",
    "silver",
    "sleepy",
    "smooth",
    "snappy",
    "steely",
    "sturdy",
    "sunny",
    "tender",
    "timely",
    "trendy",
    "upbeat",
    "velvet",
    "vivid",
    "wacky",
    "wicked",
    "windy",
    "witty",
    "zesty",
];

const NOUNS: &[&str] = &[
    "airfield",
    "airship",
    "antelope",
    "armchair",
    "backpack",
    "balloon",
    "beehive",
    "bellboy",
    "blowfish",
    "boulder",
    "buttress",
    "cabinet",
    "caravan",
    "chamber",
    "chimney",
    "cowboy",
    "daybreak",
    "dinosaur",
    "doorstep",
    "driftwood",
    "eggplant",
    "elephant",
    "falcon",
    "firework",
    "flagpole",
    "footpath",
    "gazebo",
    "gingham",
    "glacier",
    "harmonica",
    "hedgehog",
    "hilltop",
    "icehouse",
    "inkwell",
    "jamboree",
    "jetliner",
    "kangaroo",
    "keepsake",
    "lakeside",
    "lantern",
    "lemonade",
    "lighthouse",
    "magnolia",
    "mainsail",
    "mandolin",
    "meadow",
    "milestone",
    "moonbeam",
    "narwhal",
    "nutmeg",
    "oatmeal",
    "octopus",
    "orchard",
    "paintbox",
    "pancake",
    "pavilion",
    "peninsula",
    "quarry",
    "quicksand",
    "raindrop",
    "riverbed",
    "rosebud",
    "saddle",
    "sandbox",
    "seashell",
    "skylark",
    "snowdrift",
    "sunflower",
    "teacup",
    "tugboat",
    "umbrella",
    "upland",
    "vagabond",
    "waterfall",
    "windmill",
    "woodland",
    "yardarm",
    "zeppelin",
];

/// A name in the adjective-noun style of the Drycc docs (`steely-mainsail`).
/// The caller retries on a clash; after a few clashes it adds digits.
pub fn generate_app_name<R: Rng + ?Sized>(rng: &mut R, attempt: u32) -> String {
    let adjective = ADJECTIVES.choose(rng).copied().unwrap_or("steely");
    let noun = NOUNS.choose(rng).copied().unwrap_or("mainsail");
    if attempt < 5 {
        format!("{adjective}-{noun}")
    } else {
        format!("{adjective}-{noun}-{}", rng.gen_range(10..10_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in [
            "steely-mainsail",
            "abcde",
            "a1234",
            "my-app-2",
            &"a".repeat(63),
        ] {
            assert_eq!(validate_app_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        for name in [
            "",
            "abcd",
            "1abcd",
            "-abcd",
            "abcd-",
            "Abcde",
            "ab_cd",
            "ab cde",
            "abcdé",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_app_name(name), Err(AppNameError::Invalid(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn refuses_reserved_names() {
        for name in ["drycc", "drycc-system", "kube-public", "default"] {
            // `drycc` and `kube` are too short for the shape rule already.
            assert!(validate_app_name(name).is_err(), "{name}");
        }
        assert!(matches!(
            validate_app_name("drycc-system"),
            Err(AppNameError::Reserved(_))
        ));
        assert!(matches!(
            validate_app_name("default"),
            Err(AppNameError::Reserved(_))
        ));
    }

    #[test]
    fn generated_names_are_valid() {
        let mut rng = rand::thread_rng();
        for attempt in 0..10 {
            for _ in 0..50 {
                let name = generate_app_name(&mut rng, attempt);
                assert_eq!(validate_app_name(&name), Ok(()), "{name}");
            }
        }
    }
}
