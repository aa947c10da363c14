//! The Procfile parser on any text: it never panics, what it accepts is
//! valid, and printing a parsed Procfile gives text that parses to the
//! same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The controller reads Procfiles as UTF-8 and refuses anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match drycc_procfile::parse(text) {
        Ok(procfile) => {
            for entry in procfile.iter() {
                assert!(!entry.name.is_empty() && entry.name.len() <= drycc_procfile::MAX_TYPE_LEN);
                assert!(
                    !entry.command.is_empty() && !entry.command.contains('\n'),
                    "{entry:?}"
                );
            }
            let printed = procfile.to_string();
            let again = drycc_procfile::parse(&printed)
                .unwrap_or_else(|e| panic!("printed Procfile does not parse: {e}\n{printed}"));
            let pairs = |p: &drycc_procfile::Procfile| p.to_map();
            assert_eq!(pairs(&again), pairs(&procfile), "{printed}");
            assert_eq!(again.len(), procfile.len(), "{printed}");
        }
        Err(errors) => {
            // Every error renders (the controller shows them to the user).
            let _ = errors.to_string();
        }
    }
});
