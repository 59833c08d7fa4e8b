//! LDAP sign-in against a real OpenLDAP `slapd` (scripts/services/start-ldap.sh with TLS):
//! plain, StartTLS and LDAPS; groups, nested groups; wrong passwords; injection attempts in user names; a
//! wrong CA; a directory that is down or never answers; a wrong service password.
//!
//! One directory serves the whole test binary run: the first test to need it starts it on
//! free ports, and the script's watchdog (`LDAP_WATCH_PID` = this process) stops it and
//! deletes its files when the run ends. When slapd cannot start, every test here fails with
//! the script's output.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Scope, SearchEntry};
use platform::auth::ldap::{DirectoryUser, LdapError, LdapSettings, authenticate};

use crate::support::repo_root;

/// The running test directory: the script's KEY=VALUE output.
pub(crate) struct Directory {
    env: HashMap<String, String>,
}

impl Directory {
    pub(crate) fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("start-ldap.sh printed no {key}: {:?}", self.env))
    }
}

static DIRECTORY: OnceLock<Directory> = OnceLock::new();

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

pub(crate) fn directory() -> &'static Directory {
    DIRECTORY.get_or_init(|| {
        let script = repo_root().join("scripts/services/start-ldap.sh");
        let mut last_error = String::new();
        // A port picked here could be taken by someone else before slapd binds it; the script
        // then refuses, and we try other ports.
        for _ in 0..3 {
            let run_dir: PathBuf = std::env::temp_dir().join(format!(
                "tessera-ldap-it-{}-{}",
                std::process::id(),
                free_port()
            ));
            let started = Instant::now();
            let output = Command::new("bash")
                .arg(&script)
                .arg(&run_dir)
                .env("LDAP_PORT", free_port().to_string())
                .env("LDAP_TLS_PORT", free_port().to_string())
                .env("LDAP_TLS", "1")
                .env("LDAP_WATCH_PID", std::process::id().to_string())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            if output.status.success() {
                let env = String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .filter_map(|line| line.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                eprintln!(
                    "ldap tests: slapd with TLS started in {:.0} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                );
                return Directory { env };
            }
            last_error = format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        panic!(
            "the test directory (slapd) did not start; install slapd and ldap-utils \
             (scripts/setup.sh --test). Output of start-ldap.sh:\n{last_error}"
        )
    })
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Plain,
    StartTls,
    Ldaps,
}

const TRANSPORTS: [Transport; 3] = [Transport::Plain, Transport::StartTls, Transport::Ldaps];

fn settings(transport: Transport) -> LdapSettings {
    let d = directory();
    let (url, starttls, ca) = match transport {
        Transport::Plain => (d.get("LDAP_URL"), false, None),
        Transport::StartTls => (d.get("LDAP_URL"), true, Some(d.get("LDAP_CA_CERT"))),
        Transport::Ldaps => (d.get("LDAP_LDAPS_URL"), false, Some(d.get("LDAP_CA_CERT"))),
    };
    let toml = format!(
        "url = {url:?}\nstarttls = {starttls}\nbind_dn = {:?}\nbind_password = {:?}\n\
         user_base = {:?}\ngroup_base = {:?}\ntimeout_seconds = 5\n",
        d.get("LDAP_BIND_DN"),
        d.get("LDAP_BIND_PASSWORD"),
        d.get("LDAP_USER_BASE"),
        d.get("LDAP_GROUP_BASE"),
    );
    // Through serde, as a provider file would be: the defaults (filters, attributes) apply.
    let mut settings: LdapSettings = toml::from_str(&toml).expect("settings parse");
    settings.ca_cert_file = ca.map(str::to_owned);
    settings
}

async fn sign_in(settings: &LdapSettings, user: &str, password: &str) -> DirectoryUser {
    authenticate(settings, user, password)
        .await
        .unwrap_or_else(|e| panic!("{user} should sign in over {}: {e}", settings.url))
}

async fn refused(settings: &LdapSettings, user: &str, password: &str) -> LdapError {
    match authenticate(settings, user, password).await {
        Ok(who) => panic!("{user:?} signed in as {who:?}; expected a refusal"),
        Err(e) => e,
    }
}

fn is_invalid(e: &LdapError) -> bool {
    matches!(e, LdapError::InvalidCredentials)
}

const PEOPLE: [(&str, &str); 4] = [
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
    (EVE, "eve-pw"),
];
/// The directory's user whose name holds filter and DN special characters.
const EVE: &str = r"eve*(ops)\night,shift";

#[tokio::test]
async fn alice_signs_in_over_plain_starttls_and_ldaps() {
    for transport in TRANSPORTS {
        let alice = sign_in(&settings(transport), "alice", "alice-pw").await;
        assert_eq!(
            alice,
            DirectoryUser {
                dn: "uid=alice,ou=people,dc=example,dc=org".to_owned(),
                username: "alice".to_owned(),
                email: Some("alice@example.org".to_owned()),
                name: Some("Alice Tester".to_owned()),
                groups: vec!["analysts".to_owned()],
                group_dns: vec!["cn=analysts,ou=groups,dc=example,dc=org".to_owned()],
                // The direct search, then one for the groups containing analysts (none).
                group_searches: 2,
                in_chain: false,
                round_trips: alice.round_trips,
            },
            "over {transport:?}"
        );
        // Service bind, user search, user bind, two group searches (and the in-chain
        // detection's two reads when this process has not asked this directory yet).
        assert!(
            [5, 7].contains(&alice.round_trips),
            "{transport:?}: {}",
            alice.round_trips
        );
    }
}

#[tokio::test]
async fn bob_is_in_admins_and_carol_in_no_group() {
    let s = settings(Transport::StartTls);
    assert_eq!(sign_in(&s, "bob", "bob-pw").await.groups, ["admins"]);
    let carol = sign_in(&s, "carol", "carol-pw").await;
    assert_eq!(carol.groups, Vec::<String>::new());
    assert_eq!(carol.dn, "uid=carol,ou=people,dc=example,dc=org");
}

#[tokio::test]
async fn groups_come_from_the_group_search_and_from_member_of() {
    // cn=auditors is a groupOfUniqueNames: the memberof overlay does not list it in bob's
    // memberOf, so with this filter the search finds it and memberOf brings admins.
    let mut s = settings(Transport::Plain);
    s.group_filter = "(&(objectClass=groupOfUniqueNames)(uniqueMember={dn}))".to_owned();
    assert_eq!(
        sign_in(&s, "bob", "bob-pw").await.groups,
        ["admins", "auditors"]
    );
    // A filter that finds nothing leaves memberOf alone.
    s.group_filter = "(&(objectClass=groupOfNames)(member={dn})(cn=nothing))".to_owned();
    assert_eq!(sign_in(&s, "bob", "bob-pw").await.groups, ["admins"]);
    // A group base above the groups finds them too (the search is a subtree search).
    let mut s = settings(Transport::Plain);
    s.group_base = "dc=example,dc=org".to_owned();
    assert_eq!(sign_in(&s, "alice", "alice-pw").await.groups, ["analysts"]);
}

#[tokio::test]
async fn a_filter_that_finds_several_entries_signs_nobody_in() {
    // Every person has sn=Tester: the right password is not enough when the entry is not
    // the only one found.
    let mut s = settings(Transport::Plain);
    s.user_filter = "(|(uid={username})(sn=Tester))".to_owned();
    let e = refused(&s, "alice", "alice-pw").await;
    assert!(is_invalid(&e), "{e}");
}

#[tokio::test]
async fn the_name_comes_back_as_the_directory_spells_it() {
    let s = settings(Transport::Plain);
    let alice = sign_in(&s, "ALICE", "alice-pw").await;
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.dn, "uid=alice,ou=people,dc=example,dc=org");
}

#[tokio::test]
async fn wrong_password_unknown_user_and_empty_password_are_refused() {
    let s = settings(Transport::Ldaps);
    for (user, password) in [
        ("alice", "bob-pw"),
        ("alice", "alice-pw "),
        ("alice", "ALICE-PW"),
        ("nobody", "alice-pw"),
        ("alice", ""),
        ("", "alice-pw"),
        ("   ", "alice-pw"),
    ] {
        let e = refused(&s, user, password).await;
        assert!(is_invalid(&e), "{user:?}/{password:?}: {e}");
    }
}

#[tokio::test]
async fn an_empty_password_is_refused_before_any_traffic() {
    // A port where nothing listens: a refusal that needed the network would be Unavailable.
    let mut s = settings(Transport::Plain);
    s.url = format!("ldap://127.0.0.1:{}", free_port());
    let e = refused(&s, "alice", "").await;
    assert!(is_invalid(&e), "{e}");
    let e = refused(&s, "al\0ice", "alice-pw").await;
    assert!(is_invalid(&e), "{e}");
    let e = refused(&s, &"a".repeat(300), "alice-pw").await;
    assert!(is_invalid(&e), "{e}");
}

/// User names that try to widen the filter. Each is tried with every person's password.
const INJECTIONS: &[&str] = &[
    "*",
    "**",
    "a*",
    "al*",
    "*ice",
    "*)(uid=*",
    "a*)(uid=*",
    "alice)(|(uid=*",
    "alice)(uid=*",
    "*)(|(uid=*))",
    "alice)(&",
    "*)(objectClass=*",
    r"\2a",
    r"al\2a",
    r"ali\63e",
    r"\61lice",
    "alice\0",
    "alice\0)(uid=*",
    "(uid=alice)",
    "alice))(|(uid=bob",
    "eve*",
    "eve*(ops)*",
    r"eve\2a(ops)\5cnight,shift",
    "carol)(!(uid=nobody",
    "*)(mail=*@example.org",
];

#[tokio::test]
async fn injection_attempts_never_sign_anyone_in() {
    let s = settings(Transport::Plain);
    for name in INJECTIONS {
        for (_, password) in PEOPLE {
            let e = refused(&s, name, password).await;
            assert!(is_invalid(&e), "{name:?}: {e}");
        }
    }
}

#[tokio::test]
async fn injection_attempts_match_no_entry_even_in_a_compound_filter() {
    // With `(&(objectClass=inetOrgPerson)(uid={username}))`, the name `*)(uid=alice` pasted
    // in unescaped would give `(&(objectClass=inetOrgPerson)(uid=*)(uid=alice))`: alice.
    let mut s = settings(Transport::Plain);
    s.user_filter = "(&(objectClass=inetOrgPerson)(uid={username}))".to_owned();
    let mut service = Service::bind().await;
    let mut dangerous = 0;
    for name in INJECTIONS.iter().chain(&["*)(uid=alice", "*)(uid=bob"]) {
        let naive = s.user_filter.replace("{username}", name);
        if service
            .uids(&naive)
            .await
            .is_some_and(|uids| !uids.is_empty())
        {
            dangerous += 1;
        }
        let escaped = s.user_filter_for(name).expect("filter");
        assert_eq!(
            service.uids(&escaped).await.unwrap_or_default(),
            Vec::<String>::new(),
            "{name:?} matched entries through {escaped}"
        );
        for (_, password) in PEOPLE {
            let e = refused(&s, name, password).await;
            assert!(is_invalid(&e), "{name:?}: {e}");
        }
    }
    // The list must hold names that do match when not escaped, or it proves nothing.
    assert!(dangerous >= 10, "only {dangerous} names match unescaped");
    service.close().await;
}

#[tokio::test]
async fn a_name_with_special_characters_signs_in_exactly() {
    for transport in TRANSPORTS {
        let eve = sign_in(&settings(transport), EVE, "eve-pw").await;
        assert_eq!(eve.username, EVE);
        assert_eq!(
            eve.dn,
            r"uid=eve*(ops)\5Cnight\2Cshift,ou=people,dc=example,dc=org"
        );
        // The group search matched the escaped DN, and memberOf agreed.
        assert_eq!(eve.groups, ["night shift (24*7)"]);
        assert_eq!(eve.email.as_deref(), Some("eve@example.org"));
    }
    let s = settings(Transport::Plain);
    for near in [
        "eve",
        r"eve*(ops)\night",
        r"eve*(ops)\night,shift*",
        r"eve?(ops)\night,shift",
    ] {
        let e = refused(&s, near, "eve-pw").await;
        assert!(is_invalid(&e), "{near:?}: {e}");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let other_ca = directory().get("LDAP_OTHER_CA_CERT").to_owned();
    for transport in [Transport::StartTls, Transport::Ldaps] {
        let mut s = settings(transport);
        s.ca_cert_file = Some(other_ca.clone());
        let e = refused(&s, "alice", "alice-pw").await;
        assert!(
            matches!(&e, LdapError::Unavailable(m) if m.contains("certificate")),
            "{transport:?}: {e}"
        );
        // The system roots do not know the test CA either.
        s.ca_cert_file = None;
        let e = refused(&s, "alice", "alice-pw").await;
        assert!(
            matches!(&e, LdapError::Unavailable(m) if m.contains("certificate")),
            "{transport:?} with the system roots: {e}"
        );
    }
}

#[tokio::test]
async fn the_certificate_is_checked_for_a_host_name_too() {
    // The server certificate names both 127.0.0.1 (used above) and localhost.
    for transport in [Transport::StartTls, Transport::Ldaps] {
        let mut s = settings(transport);
        s.url = s.url.replace("127.0.0.1", "localhost");
        assert_eq!(sign_in(&s, "alice", "alice-pw").await.groups, ["analysts"]);
    }
}

#[tokio::test]
async fn a_directory_that_is_down_is_unavailable_at_once() {
    let mut s = settings(Transport::Plain);
    s.url = format!("ldap://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let e = refused(&s, "alice", "alice-pw").await;
    assert!(matches!(e, LdapError::Unavailable(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_directory_that_never_answers_is_unavailable_within_the_timeout() {
    // A real TCP listener that accepts and then says nothing: what a hung server looks like.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("address").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for transport in TRANSPORTS {
        let mut s = settings(transport);
        s.url = format!(
            "{}://127.0.0.1:{port}",
            if matches!(transport, Transport::Ldaps) {
                "ldaps"
            } else {
                "ldap"
            }
        );
        s.timeout_seconds = 1;
        let started = Instant::now();
        let e = refused(&s, "alice", "alice-pw").await;
        let elapsed = started.elapsed();
        assert!(
            matches!(&e, LdapError::Unavailable(m) if m.contains("timed out")),
            "{transport:?}: {e}"
        );
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(1800),
            "{transport:?}: gave up after {elapsed:?} with timeout_seconds = 1"
        );
    }
    holder.abort();
}

#[tokio::test]
async fn a_wrong_service_password_is_unavailable_and_not_repeated() {
    let mut s = settings(Transport::StartTls);
    s.bind_password = "wrong-service-secret-1234".to_owned();
    let e = refused(&s, "alice", "alice-pw").await;
    let message = e.to_string();
    assert!(matches!(e, LdapError::Unavailable(_)), "{message}");
    assert!(message.contains("service bind"), "{message}");
    assert!(!message.contains("wrong-service-secret-1234"), "{message}");
    assert!(!message.contains("alice-pw"), "{message}");
}

#[tokio::test]
async fn unusable_settings_are_misconfigured() {
    let base = settings(Transport::Ldaps);
    let mut cases = Vec::new();
    let mut s = base.clone();
    s.ca_cert_file = Some("/nonexistent/ca.pem".to_owned());
    cases.push(("unreadable CA file", s));
    let mut s = base.clone();
    let not_pem = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_pem.path(), "not a certificate").expect("write");
    s.ca_cert_file = Some(not_pem.path().display().to_string());
    cases.push(("CA file without a certificate", s));
    let mut s = base.clone();
    s.url = "http://127.0.0.1:389".to_owned();
    cases.push(("http URL", s));
    let mut s = base.clone();
    s.url = "ldapi://%2Frun%2Fslapd%2Fldapi".to_owned();
    cases.push(("local socket URL", s));
    let mut s = base.clone();
    s.starttls = true;
    cases.push(("StartTLS on ldaps", s));
    let mut s = settings(Transport::Plain);
    s.user_filter = "(uid=alice)".to_owned();
    cases.push(("filter without {username}", s));
    let mut s = settings(Transport::Plain);
    s.user_filter = "(uid={username}".to_owned();
    cases.push(("unbalanced filter", s));
    let mut s = settings(Transport::Plain);
    s.user_base = "ou=nowhere,dc=example,dc=org".to_owned();
    cases.push(("missing user base", s));
    let mut s = settings(Transport::Plain);
    s.timeout_seconds = 0;
    cases.push(("zero timeout", s));
    for (what, s) in cases {
        let e = refused(&s, "alice", "alice-pw").await;
        assert!(matches!(e, LdapError::Misconfigured(_)), "{what}: {e}");
    }
}

/// A deterministic generator (xorshift64*), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Names built from the real ones and from the characters that mean something in filters
/// and DNs: some equal a real name (up to case and spaces), some carry wildcards or filter
/// fragments that would widen an unescaped filter, some are noise.
fn random_name(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "*", "(", ")", "\\", "\0", "=", "&", "|", "!", "~", ">", "<", ",", "+", "#", " ", "\"",
        ";", "a", "l", "i", "c", "e", "b", "o", "r", "v", "A", "2a", "28", "29", "5c", "00", "uid",
        "alice", "bob", "carol", "eve", "é", "\\2a", "\\61",
    ];
    const WIDENERS: &[&str] = &[
        ")(uid=*",
        "*)(uid=*",
        ")(|(uid=*",
        "*)(objectClass=*",
        ")(!(uid=x",
        ")(mail=*",
    ];
    let seeds = ["alice", "bob", "carol", EVE];
    let seed = seeds[rng.below(seeds.len())];
    let mut name: Vec<char> = seed.chars().collect();
    match rng.below(4) {
        // The real name, in another case or with spaces around it.
        0 => {
            for c in &mut name {
                if rng.below(2) == 0 {
                    *c = c.to_ascii_uppercase();
                }
            }
            if rng.below(2) == 0 {
                name.insert(0, ' ');
            }
        }
        // A wildcard in place of, or among, the letters.
        1 => {
            for _ in 0..1 + rng.below(2) {
                let at = rng.below(name.len() + 1);
                if rng.below(2) == 0 && at < name.len() {
                    name.truncate(at);
                }
                name.insert(at.min(name.len()), '*');
            }
        }
        // A filter fragment that closes the assertion and opens another.
        2 => {
            let cut = rng.below(name.len() + 1);
            name.truncate(cut);
            name.extend(WIDENERS[rng.below(WIDENERS.len())].chars());
        }
        // Noise.
        _ => {
            for _ in 0..1 + rng.below(4) {
                let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
                let at = rng.below(name.len() + 1);
                if rng.below(3) == 0 && at < name.len() {
                    name.splice(at..at + 1, piece);
                } else {
                    name.splice(at..at, piece);
                }
            }
        }
    }
    name.into_iter().collect()
}

/// LDAP's caseIgnoreMatch, near enough: case, and leading, trailing and repeated spaces, do
/// not count.
fn normalized(name: &str) -> String {
    name.split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[tokio::test]
async fn escaped_names_never_match_more_than_the_exact_uid() {
    let s = settings(Transport::Plain);
    let mut service = Service::bind().await;
    let seed = 0x7e55_e7a5_1d00_0001_u64;
    let mut rng = Rng(seed);
    let (mut dangerous, mut exact) = (0, 0);
    for round in 0..400 {
        let name = random_name(&mut rng);
        let escaped = s.user_filter_for(&name).expect("filter");
        let uids = service.uids(&escaped).await.unwrap_or_default();
        for uid in &uids {
            assert_eq!(
                normalized(uid),
                normalized(&name),
                "seed {seed:#x} round {round}: {name:?} ({escaped}) matched {uid:?}"
            );
        }
        exact += uids.len();
        // The same name pasted in unescaped: how often it would have matched someone else.
        let naive = s.user_filter.replace("{username}", &name);
        if let Some(uids) = service.uids(&naive).await
            && uids.iter().any(|uid| normalized(uid) != normalized(&name))
        {
            dangerous += 1;
        }
        // Every tenth name goes through the whole sign-in with alice's password.
        if round % 10 == 0 {
            let outcome = authenticate(&s, &name, "alice-pw").await;
            let should = normalized(&name) == "alice" && !name.chars().any(char::is_control);
            match outcome {
                Ok(who) => assert!(should && who.username == "alice", "{name:?} → {who:?}"),
                Err(e) => assert!(!should && is_invalid(&e), "{name:?}: {e}"),
            }
        }
    }
    eprintln!(
        "property: 400 names, {exact} exact matches, {dangerous} would match others unescaped"
    );
    // The property means something only if the names include dangerous ones and real ones.
    assert!(
        dangerous >= 50,
        "the generator must produce names that are dangerous unescaped (got {dangerous})"
    );
    assert!(exact >= 40, "too few names matched exactly ({exact})");
    service.close().await;
}

#[tokio::test]
async fn sign_in_cost_over_each_transport() {
    // Figures for the README: a whole sign-in (connect, service bind, search, user bind on a
    // second connection, group search, unbind) against the local slapd.
    for transport in TRANSPORTS {
        let s = settings(transport);
        let mut times = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            sign_in(&s, "alice", "alice-pw").await;
            times.push(started.elapsed());
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let max = times[times.len() - 1];
        eprintln!("sign-in over {transport:?}: p50 {p50:?}, max {max:?} (30 runs)");
        assert!(p50 < Duration::from_secs(1), "{transport:?}: p50 {p50:?}");
    }
}

/// A service-bound connection for looking at what a filter matches.
struct Service {
    ldap: ldap3::Ldap,
}

impl Service {
    async fn bind() -> Self {
        let d = directory();
        let (conn, mut ldap) = LdapConnAsync::new(d.get("LDAP_URL"))
            .await
            .expect("connect to the test directory");
        ldap3::drive!(conn);
        ldap.simple_bind(d.get("LDAP_BIND_DN"), d.get("LDAP_BIND_PASSWORD"))
            .await
            .and_then(|r| r.success())
            .expect("service bind");
        Self { ldap }
    }

    /// The uids `filter` matches under ou=people; `None` when the filter is not valid or
    /// the server refuses it.
    async fn uids(&mut self, filter: &str) -> Option<Vec<String>> {
        let base = directory().get("LDAP_USER_BASE").to_owned();
        let result = self
            .ldap
            .search(&base, Scope::Subtree, filter, vec!["uid"])
            .await
            .ok()?;
        let (entries, _) = result.success().ok()?;
        Some(
            entries
                .into_iter()
                .flat_map(|e| {
                    let mut entry = SearchEntry::construct(e);
                    entry.attrs.remove("uid").unwrap_or_default()
                })
                .collect(),
        )
    }

    async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Post the LDAP form of acme's `corp-ldap` (sign-in, or the account page's link).
pub(crate) async fn post_directory_form(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    csrf: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}{path}"))
        .form(&[
            ("csrf", csrf),
            ("username", user),
            ("password", password),
            ("next", "/account"),
        ])
        .send()
        .await
        .expect("post")
}

/// Over the real directory: acme's LDAP provider vouches for alice and bob (mail
/// `…@example.org`, which a directory always "verifies"), but alice@example.org is the
/// platform's superadmin and bob@example.org owns another tenant: both refused, nothing
/// made. Alice then links the directory from her account page with her directory
/// password (a wrong one first), and the directory signs her in from then on.
#[tokio::test]
async fn a_tenants_directory_never_signs_in_as_a_superadmin_or_another_tenants_user() {
    use crate::oidc::{
        account_page, audit, browser, csrf_of, local_sign_in, op, served, signed_in,
    };
    use platform::admin;
    use reqwest::StatusCode;

    let d = directory();
    let (app, base, _clock) = served().await;
    let store = &app.state.store;
    admin::create_tenant(store, "acme", None, None, &op())
        .await
        .expect("acme");
    let file = format!(
        "kind = \"ldap\"\ndisplay_name = \"Corporate directory\"\nurl = {:?}\nbind_dn = {:?}\n\
         bind_password = {:?}\nuser_base = {:?}\ngroup_base = {:?}\ntimeout_seconds = 5\n\
         [[groups]]\ngroup = \"admins\"\nrole = \"admin\"\n",
        d.get("LDAP_URL"),
        d.get("LDAP_BIND_DN"),
        d.get("LDAP_BIND_PASSWORD"),
        d.get("LDAP_USER_BASE"),
        d.get("LDAP_GROUP_BASE"),
    );
    admin::set_provider(store, &app.state.secrets, "acme", "corp-ldap", &file, &op())
        .await
        .expect("provider");
    crate::oidc::superadmin_and_other_owner(&app, "alice@example.org", "bob@example.org").await;
    let users = store.user_count().await.expect("count");
    let grants = audit(&app, "membership.grant").await.len();

    for (who, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let client = browser();
        let html = client
            .get(format!("{base}/login?tenant=acme"))
            .send()
            .await
            .expect("login")
            .text()
            .await
            .expect("html");
        let csrf = csrf_of(&html);
        let response = post_directory_form(
            &client,
            &base,
            "/login/acme/corp-ldap",
            &csrf,
            who,
            password,
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{who}");
        let html = response.text().await.expect("page");
        assert!(
            html.contains("An account with this email address already exists. Sign in to it, then link Corporate directory from your account page."),
            "{html}"
        );
        assert!(!signed_in(&client, &base).await, "no session for {who}");
    }
    let failed = audit(&app, "auth.sign_in_failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|e| e.detail["reason"] == "account_exists")
    );
    assert_eq!(store.user_count().await.expect("count"), users);
    assert!(audit(&app, "identity.link").await.is_empty());
    assert_eq!(
        audit(&app, "membership.grant").await.len(),
        grants,
        "no role granted"
    );

    // Alice links the directory herself, signed in with her password.
    let alice = browser();
    local_sign_in(
        &alice,
        &base,
        "alice@example.org",
        crate::oidc::ROOT_PASSWORD,
    )
    .await;
    let csrf = csrf_of(&account_page(&alice, &base).await);
    let link = "/account/link/acme/corp-ldap";
    let wrong = post_directory_form(&alice, &base, link, &csrf, "alice", "not-hers").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .expect("page")
            .contains("Wrong user name or password.")
    );
    let failed = audit(&app, "identity.link_failed").await;
    assert_eq!(failed[0].detail["reason"], "invalid_credentials");
    let linked = post_directory_form(&alice, &base, link, &csrf, "alice", "alice-pw").await;
    assert_eq!(linked.status(), StatusCode::OK);
    let html = linked.text().await.expect("page");
    assert!(
        html.contains("Corporate directory is linked to your account."),
        "{html}"
    );
    let links = audit(&app, "identity.link").await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].detail["explicit"], true);
    assert!(links[0].actor.starts_with("user:"), "{:?}", links[0]);

    // From now on the directory signs in to her account.
    let fresh = browser();
    let html = fresh
        .get(format!("{base}/login?tenant=acme"))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    let signed = post_directory_form(
        &fresh,
        &base,
        "/login/acme/corp-ldap",
        &csrf_of(&html),
        "alice",
        "alice-pw",
    )
    .await;
    assert_eq!(signed.status(), StatusCode::OK);
    assert_eq!(signed.url().path(), "/account");
    assert!(
        signed
            .text()
            .await
            .expect("page")
            .contains("alice@example.org")
    );
}

// --- nested groups (issue 13) ---------------------------------------------------------------

fn with_depth(depth: u32) -> LdapSettings {
    let mut s = settings(Transport::Plain);
    s.nested_depth = depth;
    s
}

#[tokio::test]
async fn a_role_granted_to_a_parent_group_reaches_its_nested_members() {
    use platform::auth::providers::{GroupMapping, mapped_access};
    use platform::tenancy::Role;
    // dana is in research; research is a member of dash-viewers, which maps to viewer.
    let dana = sign_in(&with_depth(8), "dana", "dana-pw").await;
    assert_eq!(dana.groups, ["dash-viewers", "research"]);
    let mapping = |group: &str| GroupMapping {
        group: group.to_owned(),
        role: Some(Role::Viewer),
        teams: vec!["viewers".to_owned()],
    };
    let by_name = [mapping("dash-viewers")];
    assert_eq!(
        mapped_access(&by_name, &dana.groups),
        (Some(Role::Viewer), vec!["viewers".to_owned()])
    );
    // By DN, spelled with other case and spaces, against names and DNs as sign-in passes them.
    let by_dn = [mapping("CN=dash-viewers, ou=Groups, dc=example, dc=org")];
    let names_and_dns: Vec<String> = dana.groups.iter().chain(&dana.group_dns).cloned().collect();
    assert_eq!(mapped_access(&by_dn, &names_and_dns).0, Some(Role::Viewer));
    // Without nesting, dana gets no role.
    let flat = sign_in(&with_depth(0), "dana", "dana-pw").await;
    assert_eq!(flat.groups, ["research"]);
    assert_eq!(flat.group_searches, 1);
    assert_eq!(mapped_access(&by_name, &flat.groups).0, None);
}

#[tokio::test]
async fn a_membership_cycle_ends_and_yields_both_groups() {
    // cycle-a and cycle-b are members of each other; frank is in cycle-a.
    let frank = tokio::time::timeout(
        Duration::from_secs(30),
        sign_in(&with_depth(8), "frank", "frank-pw"),
    )
    .await
    .expect("a cycle must not hang the sign-in");
    assert_eq!(frank.groups, ["cycle-a", "cycle-b"]);
    assert_eq!(frank.group_dns.len(), 2, "{:?}", frank.group_dns);
    // Direct search, level 1 finds cycle-b, level 2 finds only cycle-a again (visited): the
    // resolution stops there rather than at the depth limit.
    assert_eq!(frank.group_searches, 3);
}

#[tokio::test]
async fn a_chain_deeper_than_the_limit_is_refused_and_searches_grow_with_depth_only() {
    // gina is in chain-1 ⊂ chain-2 ⊂ chain-3 ⊂ chain-4.
    let chain = |n: usize| (1..=n).map(|i| format!("chain-{i}")).collect::<Vec<_>>();
    // Depth 0 reads the direct groups only, by choice: no refusal.
    let flat = sign_in(&with_depth(0), "gina", "gina-pw").await;
    assert_eq!(flat.groups, chain(1));
    assert_eq!(flat.group_searches, 1);
    // Depth 1 and 2 stop short of chain-4: one more search sees the next level, and the
    // sign-in is refused rather than granting from part of the groups.
    for depth in [1, 2] {
        let e = refused(&with_depth(depth), "gina", "gina-pw").await;
        assert!(
            matches!(&e, LdapError::NestingTooDeep(m) if m.contains(&format!("nested_depth = {depth}"))),
            "depth {depth}: {e}"
        );
    }
    // Depth 3 reaches chain-4; the extra search finds nothing above it.
    for depth in [3, 8] {
        let gina = sign_in(&with_depth(depth), "gina", "gina-pw").await;
        assert_eq!(gina.groups, chain(4), "depth {depth}");
        // The direct search, one per level, and the one that finds no level above.
        assert_eq!(gina.group_searches, 1 + 4, "depth {depth}");
    }
    // A search budget below the chain's length is refused too, naming the setting.
    let mut s = with_depth(8);
    s.nested_max_searches = 2;
    let e = refused(&s, "gina", "gina-pw").await;
    assert!(
        matches!(&e, LdapError::NestingTooDeep(m) if m.contains("nested_max_searches = 2")),
        "{e}"
    );
    s.nested_max_searches = 4;
    assert_eq!(sign_in(&s, "gina", "gina-pw").await.groups, chain(4));
}

#[tokio::test]
async fn searches_per_level_do_not_grow_with_the_number_of_groups() {
    // Every seeded person is in one direct group; a group_filter that also matches dana's
    // and frank's memberships gives gina three groups per level instead of one.
    let mut s = with_depth(8);
    s.group_filter =
        "(&(objectClass=groupOfNames)(|(member={dn})(member=uid=dana,ou=people,dc=example,dc=org)(member=uid=frank,ou=people,dc=example,dc=org)))"
            .to_owned();
    // gina's direct level is chain-1, research and cycle-a (three groups): level 1 is still
    // one search (chain-2, dash-viewers, cycle-b), and so on down the chain.
    let gina = sign_in(&s, "gina", "gina-pw").await;
    assert_eq!(
        gina.groups,
        [
            "chain-1",
            "chain-2",
            "chain-3",
            "chain-4",
            "cycle-a",
            "cycle-b",
            "dash-viewers",
            "research"
        ]
    );
    let alone = sign_in(&with_depth(8), "gina", "gina-pw").await;
    assert_eq!(gina.group_searches, alone.group_searches);
}

// --- an Active-Directory-shaped tree (issue 13) ---------------------------------------------

/// The AD user filter: `user` objects by sAMAccountName, disabled accounts (bit 2 of
/// userAccountControl) left out with the bitwise-AND matching rule.
pub(crate) const AD_USER_FILTER: &str = "(&(objectClass=user)(sAMAccountName={username})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))";
pub(crate) const AD_GROUP_FILTER: &str = "(&(objectClass=group)(member={dn}))";

pub(crate) fn ad_settings() -> LdapSettings {
    let d = directory();
    let toml = format!(
        "url = {:?}\nbind_dn = {:?}\nbind_password = {:?}\nuser_base = {:?}\n\
         group_base = {:?}\nuser_filter = {AD_USER_FILTER:?}\ngroup_filter = {AD_GROUP_FILTER:?}\n\
         email_attribute = \"mail\"\nname_attribute = \"cn\"\ntimeout_seconds = 5\n",
        d.get("LDAP_URL"),
        d.get("LDAP_AD_BIND_DN"),
        d.get("LDAP_AD_BIND_PASSWORD"),
        d.get("LDAP_AD_USER_BASE"),
        d.get("LDAP_AD_GROUP_BASE"),
    );
    toml::from_str(&toml).expect("AD settings parse")
}

/// The provider file for the AD tree: Dash-Viewers → viewer (team viewers), Dash-Admins →
/// admin, Chain-12 → viewer, plus `extra` lines.
pub(crate) fn ad_provider_file(extra: &str) -> String {
    let d = directory();
    format!(
        "kind = \"ldap\"\ndisplay_name = \"Corp AD\"\nurl = {:?}\nbind_dn = {:?}\n\
         bind_password = {:?}\nuser_base = {:?}\ngroup_base = {:?}\nuser_filter = {AD_USER_FILTER:?}\n\
         group_filter = {AD_GROUP_FILTER:?}\ntimeout_seconds = 5\n{extra}\n\
         [[groups]]\ngroup = \"Dash-Viewers\"\nrole = \"viewer\"\nteams = [\"viewers\"]\n\
         [[groups]]\ngroup = \"CN=Dash-Admins, OU=Groups, DC=corp, DC=example, DC=com\"\nrole = \"admin\"\n\
         [[groups]]\ngroup = \"Chain-12\"\nrole = \"viewer\"\n",
        d.get("LDAP_URL"),
        d.get("LDAP_AD_BIND_DN"),
        d.get("LDAP_AD_BIND_PASSWORD"),
        d.get("LDAP_AD_USER_BASE"),
        d.get("LDAP_AD_GROUP_BASE"),
    )
}

fn ad_mappings() -> Vec<platform::auth::providers::GroupMapping> {
    match platform::auth::providers::parse_file(&ad_provider_file("")) {
        Ok(config) => config.groups,
        Err(e) => panic!("AD provider file: {e}"),
    }
}

fn role_from(user: &DirectoryUser) -> Option<platform::tenancy::Role> {
    let names_and_dns: Vec<String> = user.groups.iter().chain(&user.group_dns).cloned().collect();
    platform::auth::providers::mapped_access(&ad_mappings(), &names_and_dns).0
}

#[tokio::test]
async fn ad_people_sign_in_by_sam_account_name_with_roles_through_nested_groups() {
    use platform::tenancy::Role;
    let s = ad_settings();
    // ada: Analysts ⊂ Dash-Viewers.
    let ada = sign_in(&s, "ada", "ada-pw").await;
    assert_eq!(ada.username, "ada");
    assert_eq!(ada.dn, "cn=Ada Lovelace,ou=Staff,dc=corp,dc=example,dc=com");
    assert_eq!(ada.email.as_deref(), Some("ada@corp.example.com"));
    assert_eq!(ada.groups, ["Analysts", "Dash-Viewers"]);
    assert_eq!(role_from(&ada), Some(Role::Viewer));
    // The name typed in another case is the directory's spelling.
    assert_eq!(sign_in(&s, "ADA", "ada-pw").await.username, "ada");
    // ben: Platform Engineers ⊂ IT Ops ⊂ Dash-Admins (mapped by DN, spelled otherwise).
    let ben = sign_in(&s, "ben", "ben-pw").await;
    assert_eq!(ben.groups, ["Dash-Admins", "IT Ops", "Platform Engineers"]);
    assert_eq!(role_from(&ben), Some(Role::Admin));
    // fay: Cycle-A ⇄ Cycle-B ⊂ Dash-Viewers; the cycle ends.
    let fay = tokio::time::timeout(Duration::from_secs(30), sign_in(&s, "fay", "fay-pw"))
        .await
        .expect("a cycle must not hang the sign-in");
    assert_eq!(fay.groups, ["Cycle-A", "Cycle-B", "Dash-Viewers"]);
    assert_eq!(role_from(&fay), Some(Role::Viewer));
    // dee: only Sales, which maps to nothing.
    let dee = sign_in(&s, "dee", "dee-pw").await;
    assert_eq!(dee.groups, ["Sales"]);
    assert_eq!(role_from(&dee), None);
    // Wrong passwords, and a uid-style name, are refused.
    for (user, password) in [
        ("ada", "ben-pw"),
        ("Ada Lovelace", "ada-pw"),
        ("ada@corp.example.com", "ada-pw"),
    ] {
        let e = refused(&s, user, password).await;
        assert!(is_invalid(&e), "{user}: {e}");
    }
}

#[tokio::test]
async fn a_disabled_ad_account_is_filtered_out_by_user_account_control() {
    let s = ad_settings();
    // cy's password is right and Dash-Admins names cy directly, but userAccountControl has
    // bit 2 (514 = NORMAL_ACCOUNT | ACCOUNTDISABLE).
    let e = refused(&s, "cy", "cy-pw").await;
    assert!(is_invalid(&e), "{e}");
    // The filter is what refuses cy: without the userAccountControl clause the same
    // directory signs cy in as a Dash-Admin.
    let mut unfiltered = ad_settings();
    unfiltered.user_filter = "(&(objectClass=user)(sAMAccountName={username}))".to_owned();
    let cy = sign_in(&unfiltered, "cy", "cy-pw").await;
    assert_eq!(cy.groups, ["Dash-Admins"]);
}

#[tokio::test]
async fn in_chain_is_detected_as_unsupported_on_slapd_and_the_walk_is_used() {
    let s = ad_settings();
    let report = platform::auth::ldap::inspect(&s, Some("ben"))
        .await
        .expect("inspect");
    assert!(!report.in_chain.supported, "{:?}", report.in_chain);
    // slapd's subschema was read: it lists matching rules (the bitwise ones among them),
    // just not in-chain.
    assert!(
        report
            .in_chain
            .evidence
            .contains("matching rules, not 1.2.840.113556.1.4.1941"),
        "{:?}",
        report.in_chain
    );
    let ben = report.user.expect("ben found");
    assert!(!ben.in_chain);
    assert_eq!(ben.groups, ["Dash-Admins", "IT Ops", "Platform Engineers"]);
    // Direct, two levels, and the search that finds nothing above Dash-Admins.
    assert_eq!(ben.group_searches, 4);
    // The query that would have been sent to a directory that supports it:
    let chained = s
        .in_chain_group_filter("cn=Ben Okafor,ou=Staff,dc=corp,dc=example,dc=com", "ben")
        .expect("filter")
        .expect("a member term");
    assert_eq!(
        chained,
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=cn=Ben Okafor,ou=Staff,dc=corp,dc=example,dc=com))"
    );
    // slapd itself does not know the rule: the filter finds nothing there, which is why it
    // must never be assumed.
    let mut service = Service::bind().await;
    let base = directory().get("LDAP_AD_GROUP_BASE").to_owned();
    let found = service
        .ldap
        .search(&base, Scope::Subtree, &chained, vec!["cn"])
        .await
        .map(|r| r.0.len())
        .unwrap_or(0);
    assert_eq!(found, 0, "slapd answered an in-chain search");
    service.close().await;
}

#[tokio::test]
async fn an_ad_chain_deeper_than_nested_depth_is_refused_naming_the_setting() {
    // nest10 is ten levels below Chain-12, deep eleven.
    let mut s = ad_settings();
    let e = refused(&s, "nest10", "nest10-pw").await;
    assert!(
        matches!(&e, LdapError::NestingTooDeep(m) if m.contains("nested_depth = 8")),
        "{e}"
    );
    s.nested_depth = 10;
    let nest10 = sign_in(&s, "nest10", "nest10-pw").await;
    assert_eq!(nest10.groups.len(), 11, "{:?}", nest10.groups);
    assert_eq!(role_from(&nest10), Some(platform::tenancy::Role::Viewer));
    let started = Instant::now();
    let e = refused(&s, "deep", "deep-pw").await;
    assert!(
        matches!(&e, LdapError::NestingTooDeep(m) if m.contains("nested_depth = 10")),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    s.nested_depth = 32;
    assert_eq!(sign_in(&s, "deep", "deep-pw").await.groups.len(), 12);
}

#[tokio::test]
async fn a_search_base_that_is_a_referral_is_refused_and_references_are_not_followed() {
    let d = directory();
    // OU=EMEA is a referral object: a search based there is answered with rc 10.
    let mut s = ad_settings();
    s.user_base = d.get("LDAP_AD_REFERRAL_BASE").to_owned();
    let e = refused(&s, "ada", "ada-pw").await;
    assert!(
        matches!(&e, LdapError::Referral(m) if m.contains("ldap://emea.corp.example.com/")),
        "{e}"
    );
    let mut s = ad_settings();
    s.group_base = d.get("LDAP_AD_REFERRAL_BASE").to_owned();
    let e = refused(&s, "ada", "ada-pw").await;
    assert!(matches!(&e, LdapError::Referral(_)), "{e}");
    // From the domain root, the subtree search also returns a continuation reference to
    // EMEA: it is left out (not followed, not taken for an entry) and ada signs in.
    let mut s = ad_settings();
    s.user_base = d.get("LDAP_AD_BASE_DN").to_owned();
    s.group_base = d.get("LDAP_AD_BASE_DN").to_owned();
    let ada = sign_in(&s, "ada", "ada-pw").await;
    assert_eq!(ada.groups, ["Analysts", "Dash-Viewers"]);
    let e = refused(&s, "nobody", "ada-pw").await;
    assert!(is_invalid(&e), "{e}");
}

#[tokio::test]
async fn sign_in_cost_with_nesting() {
    // Figures for README and docs/benchmarks.md: a whole sign-in through 1, 3 and 10
    // levels of nested groups (plain ldap:// to the local slapd, the walk: slapd has no
    // in-chain), 30 runs each.
    let mut s = ad_settings();
    s.nested_depth = 10;
    // The first sign-in of the process asks the directory about in-chain (two reads); it
    // is remembered, so the measured ones do not.
    sign_in(&s, "ada", "ada-pw").await;
    for (user, levels) in [("nest1", 1), ("nest3", 3), ("nest10", 10)] {
        let password = format!("{user}-pw");
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..30 {
            let started = Instant::now();
            let who = sign_in(&s, user, &password).await;
            times.push(started.elapsed());
            last = Some(who);
        }
        let who = last.expect("ran");
        times.sort();
        let p50 = times[times.len() / 2];
        eprintln!(
            "nesting {levels:>2} levels: {} round trips ({} group searches), p50 {:.2} ms, max {:.2} ms (30 runs)",
            who.round_trips,
            who.group_searches,
            p50.as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
        // Direct search, one per level, one finding nothing above the top group; plus the
        // service bind, the user search and the user bind.
        assert_eq!(who.group_searches, levels + 2, "{user}");
        assert_eq!(who.round_trips, 3 + who.group_searches, "{user}");
        assert!(p50 < Duration::from_secs(1), "{user}: p50 {p50:?}");
    }
}
