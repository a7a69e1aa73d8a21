use crate::util::{TestEnv, bin};

/// Runs `check` on a config with `body` and returns (exit code, stderr).
fn check(body: &str) -> (Option<i32>, String, String) {
    let env = TestEnv::new(body);
    let out = env.run(&["check"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        env.config.display().to_string(),
    )
}

#[test]
fn config_errors_exit_2_naming_file_line_and_key() {
    // TestEnv writes two lines (data_dir, [api]) and one more (listen) before the body.
    let cases = [
        (
            "[poll]\ninterval = \"10m\"\ncolour = \"red\"\n",
            6,
            "poll.colour",
            "unknown field",
        ),
        (
            "[poll]\ninterval = \"soon\"\n",
            5,
            "poll.interval",
            "invalid duration",
        ),
        (
            "[poll]\nmax_body = \"16 megs\"\n",
            5,
            "poll.max_body",
            "invalid size",
        ),
        (
            "[[feeds]]\nurl = \"http://a.example/\"\n[[feeds]]\nname = \"nameless\"\n",
            6,
            "feeds[1]",
            "missing field `url`",
        ),
        (
            "[dedup]\nwindow = \"30\"\n",
            5,
            "dedup.window",
            "invalid duration",
        ),
    ];
    for (body, line, key, message) in cases {
        let (code, stderr, file) = check(body);
        assert_eq!(code, Some(2), "{body:?}: {stderr}");
        let expected = format!("{file}:{line}: {key}");
        assert!(
            stderr.contains(&expected),
            "{body:?}: expected {expected:?} in {stderr:?}"
        );
        assert!(
            stderr.contains(message),
            "{body:?}: expected {message:?} in {stderr:?}"
        );
    }
}

#[test]
fn every_command_refuses_a_bad_config_with_exit_2() {
    let env = TestEnv::new("[poll]\ninterval = 5\n");
    for args in [
        &["run", "--once"][..],
        &["run"],
        &["articles"],
        &["duplicates"],
        &["feeds"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(
        !env.data_dir().exists(),
        "a refused config must not create a database"
    );
}

#[test]
fn check_accepts_the_shipped_configs_and_a_missing_config_is_a_usage_error() {
    for config in ["config/feedsieve.toml", "config/demo/feedsieve.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
        let out = bin()
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = bin()
        .arg("articles")
        .env_remove("FEEDSIEVE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
