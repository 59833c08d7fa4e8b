#!/usr/bin/env bash
# A throwaway OpenLDAP directory on loopback for the LDAP sign-in tests.
#
#   eval "$(scripts/services/start-ldap.sh [RUN_DIR])"   start one (RUN_DIR: new or empty; a
#                                                       temporary directory when left out)
#   scripts/services/start-ldap.sh stop RUN_DIR          stop it and delete RUN_DIR
#
# Environment:
#   LDAP_PORT=3389         plain ldap:// port (StartTLS is offered on it when LDAP_TLS=1)
#   LDAP_TLS=0             1: make a throwaway CA and a server certificate for 127.0.0.1 and
#                          localhost, offer StartTLS, and listen for ldaps:// as well
#   LDAP_TLS_PORT=6636     the ldaps:// port
#   LDAP_LOGLEVEL=0        slapd's -d level (e.g. "stats" logs every operation to slapd.log)
#   LDAP_WATCH_PID=        stop the directory by itself once this process has exited (a test
#                          binary passes its own PID so nothing outlives it)
#
# Suffix dc=example,dc=org. People (ou=people), password in brackets, and their groups
# (groupOfNames in ou=groups; the memberof overlay keeps `memberOf` on each person):
#   alice [alice-pw] analysts | bob [bob-pw] admins | carol [carol-pw] none
#   eve*(ops)\night,shift [eve-pw] night shift (24*7)   (LDAP filter and DN special characters)
# plus cn=auditors, a groupOfUniqueNames with bob as uniqueMember (no memberOf for it).
# Nested: dana [dana-pw] research ⊂ dash-viewers | frank [frank-pw] cycle-a ⇄ cycle-b |
#   gina [gina-pw] chain-1 ⊂ chain-2 ⊂ chain-3 ⊂ chain-4.
# The service account cn=tessera,ou=services,dc=example,dc=org [tessera-pw] searches; like any
# bound identity it may read everything but passwords, which serve for binds only. Anonymous
# clients see the root DSE and the schema, nothing else.
#
# Prints KEY=VALUE lines for `eval`; progress and errors go to stderr. Refuses to start when a
# port is already taken, and `stop` only stops the slapd this script started in RUN_DIR.
set -euo pipefail

say() { printf 'start-ldap: %s\n' "$*" >&2; }
fail() {
    printf 'start-ldap: ERROR: %s\n' "$*" >&2
    exit 1
}

marker=.tessera-throwaway-ldap

# Waits until PID is gone. A process whose parent is PID 1 stays a zombie until PID 1 reaps it
# (every couple of seconds here), and `kill -0` succeeds on a zombie: treat Z as gone.
wait_gone() {
    local pid=$1 stat
    for _ in $(seq 100); do
        stat=$(ps -o stat= -p "$pid" 2>/dev/null || true)
        if [ -z "$stat" ] || [[ "$stat" == Z* ]]; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

stop_dir() {
    local dir=$1 pid
    if [ ! -f "$dir/$marker" ]; then
        say "$dir was not made by this script; leaving it alone"
        return 0
    fi
    if [ -f "$dir/slapd.pid.mine" ]; then
        pid=$(cat "$dir/slapd.pid.mine")
        # Only signal it while it still is our slapd (the PID could have been reused).
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/slapd.conf"; then
            kill "$pid" 2>/dev/null || true
            wait_gone "$pid" || {
                kill -9 "$pid" 2>/dev/null || true
                wait_gone "$pid" || true
            }
        fi
    fi
    # A watchdog left waiting (after a stop by hand) has nothing more to do. When the
    # watchdog itself runs this (it execs us), its PID is ours: leave it.
    if [ -f "$dir/watchdog.pid" ]; then
        pid=$(cat "$dir/watchdog.pid")
        if [ "$pid" != $$ ] && [ -r "/proc/$pid/cmdline" ] &&
            tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$dir"
    say "stopped the directory in $dir"
}

if [ "${1:-}" = stop ]; then
    stop_dir "${2:?usage: start-ldap.sh stop RUN_DIR}"
    exit 0
fi

port=${LDAP_PORT:-3389}
tls=${LDAP_TLS:-0}
tls_port=${LDAP_TLS_PORT:-6636}
loglevel=${LDAP_LOGLEVEL:-0}
watch_pid=${LDAP_WATCH_PID:-}
suffix=dc=example,dc=org
ad_suffix=dc=corp,dc=example,dc=com
ad_admin_dn="cn=admin,$ad_suffix"
ad_service_dn="CN=svc-tessera,OU=Service Accounts,$ad_suffix"
ad_service_pw=svc-tessera-pw
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
admin_dn="cn=admin,$suffix"
admin_pw=admin-secret
service_dn="cn=tessera,ou=services,$suffix"
service_pw=tessera-pw

taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- packages ---------------------------------------------------------------------------------
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null || ! command -v slappasswd >/dev/null; then
    command -v apt-get >/dev/null || fail "slapd/ldap-utils are missing and there is no apt-get to install them"
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || fail "installing slapd and ldap-utils needs root (or sudo)"
        sudo=(sudo)
    fi
    say "installing slapd and ldap-utils (apt)"
    "${sudo[@]}" apt-get update -qq >&2 || fail "'apt-get update' failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slapd ldap-utils >&2 || fail "'apt-get install slapd ldap-utils' failed"
fi
if [ "$tls" = 1 ]; then
    command -v openssl >/dev/null || fail "LDAP_TLS=1 needs openssl (Debian: apt-get install openssl)"
fi

# --- ports and run directory ------------------------------------------------------------------
taken "$port" && fail "127.0.0.1:$port is already in use (set LDAP_PORT to a free port)"
if [ "$tls" = 1 ]; then
    taken "$tls_port" && fail "127.0.0.1:$tls_port is already in use (set LDAP_TLS_PORT to a free port)"
fi

if [ -n "${1:-}" ]; then
    dir=$1
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        fail "$dir is not empty; give a new or empty directory"
    fi
    mkdir -p "$dir"
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-ldap.XXXXXX")
fi
dir=$(cd "$dir" && pwd)
touch "$dir/$marker"
mkdir "$dir/db" "$dir/ad-db"
# Anything that fails from here on removes what was made (slapd included).
ready=0
trap '[ "$ready" = 1 ] || stop_dir "$dir" >/dev/null 2>&1 || true' EXIT

# --- certificates (LDAP_TLS=1) ----------------------------------------------------------------
# P-256 keys: much quicker to make than RSA, and both GnuTLS (slapd) and rustls accept them.
make_ca() { # NAME SUBJECT
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 2 \
        -subj "$2" -keyout "$dir/$1.key" -out "$dir/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null || fail "openssl could not make the CA $1"
}
tls_conf=""
if [ "$tls" = 1 ]; then
    make_ca ca "/CN=Tessera test directory CA"
    # A second, unrelated CA: a client that trusts only it must refuse the directory.
    make_ca other-ca "/CN=Unrelated test CA"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
        -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null ||
        fail "openssl could not make the server key"
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null ||
        fail "openssl could not sign the server certificate"
    tls_conf="TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key"
fi

# --- configuration ----------------------------------------------------------------------------
hash() { slappasswd -h '{SSHA}' -s "$1"; }
cat >"$dir/slapd.conf" <<EOF
# Throwaway test directory made by scripts/services/start-ldap.sh; deleted by its stop verb.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $here/ad-lite.schema
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
$tls_conf

# Anyone may read the root DSE and the schema (clients look there first).
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read

database mdb
maxsize 67108864
suffix "$suffix"
rootdn "$admin_dn"
rootpw $(hash "$admin_pw")
directory $dir/db
index objectClass eq
index uid,cn,mail eq
index member,memberOf eq

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

# Passwords only ever serve to bind; bound identities read the rest; anonymous sees nothing.
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none

# The Active-Directory-shaped tree.
database mdb
maxsize 67108864
suffix "$ad_suffix"
rootdn "$ad_admin_dn"
rootpw $(hash "$admin_pw")
directory $dir/ad-db
index objectClass eq
index cn,sAMAccountName,mail eq
index member,memberOf eq

overlay memberof
memberof-group-oc group
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none
EOF
slaptest -u -f "$dir/slapd.conf" >"$dir/slaptest.log" 2>&1 ||
    fail "slaptest rejected $dir/slapd.conf: $(tail -n 3 "$dir/slaptest.log")"

# --- start ------------------------------------------------------------------------------------
urls="ldap://127.0.0.1:$port/"
[ "$tls" = 1 ] && urls="$urls ldaps://127.0.0.1:$tls_port/"
# -d keeps slapd in the foreground, so $! is slapd itself; its output goes to slapd.log so a
# caller that reads our stdout to the end is not held open by it.
nohup /usr/sbin/slapd -h "$urls" -f "$dir/slapd.conf" -d "$loglevel" </dev/null >"$dir/slapd.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/slapd.pid.mine"
up=0
for _ in $(seq 200); do
    if ldapwhoami -x -H "ldap://127.0.0.1:$port" -D "$admin_dn" -w "$admin_pw" >/dev/null 2>&1; then
        up=1
        break
    fi
    stat=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    if [ -z "$stat" ] || [[ "$stat" == Z* ]]; then
        fail "slapd exited at start: $(tail -n 5 "$dir/slapd.log")"
    fi
    sleep 0.05
done
[ "$up" = 1 ] || fail "slapd does not answer on 127.0.0.1:$port; see $dir/slapd.log"

# --- entries (online, so that the memberof overlay fills in memberOf) -------------------------
person() { # UID RDN-VALUE PASSWORD GIVEN-NAME MAIL-LOCAL-PART
    printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Tester\nmail: %s@example.org\nuserPassword: %s\n\n' \
        "$2" "$suffix" "$1" "$4 Tester" "$5" "$(hash "$3")"
}
{
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$suffix"
    for ou in people groups services; do
        printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$suffix" "$ou"
    done
    printf 'dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: tessera\nuserPassword: %s\n\n' \
        "$service_dn" "$(hash "$service_pw")"
    person alice alice alice-pw Alice alice
    person bob bob bob-pw Bob bob
    person carol carol carol-pw Carol carol
    # uid "eve*(ops)\night,shift": in the DN the backslash and the comma are escaped.
    person 'eve*(ops)\night,shift' 'eve*(ops)\5Cnight\2Cshift' eve-pw Eve eve
    printf 'dn: cn=analysts,ou=groups,%s\nobjectClass: groupOfNames\ncn: analysts\nmember: uid=alice,ou=people,%s\n\n' "$suffix" "$suffix"
    printf 'dn: cn=admins,ou=groups,%s\nobjectClass: groupOfNames\ncn: admins\nmember: uid=bob,ou=people,%s\n\n' "$suffix" "$suffix"
    printf 'dn: cn=night shift (24*7),ou=groups,%s\nobjectClass: groupOfNames\ncn: night shift (24*7)\nmember: uid=eve*(ops)\\5Cnight\\2Cshift,ou=people,%s\n\n' "$suffix" "$suffix"
    # Nested groups (issue 13). dana is in research, research is a member of dash-viewers;
    # frank is in cycle-a, and cycle-a and cycle-b are members of each other (legal in Active
    # Directory); gina is in chain-1, a member of chain-2, a member of chain-3, of chain-4.
    person dana dana dana-pw Dana dana
    person frank frank frank-pw Frank frank
    person gina gina gina-pw Gina gina
    group() { # NAME MEMBER-DN...
        local name=$1
        shift
        printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n' "$name" "$suffix" "$name"
        for member in "$@"; do printf 'member: %s\n' "$member"; done
        printf '\n'
    }
    group research "uid=dana,ou=people,$suffix"
    group dash-viewers "cn=research,ou=groups,$suffix"
    group cycle-a "uid=frank,ou=people,$suffix" "cn=cycle-b,ou=groups,$suffix"
    group cycle-b "cn=cycle-a,ou=groups,$suffix"
    group chain-1 "uid=gina,ou=people,$suffix"
    group chain-2 "cn=chain-1,ou=groups,$suffix"
    group chain-3 "cn=chain-2,ou=groups,$suffix"
    group chain-4 "cn=chain-3,ou=groups,$suffix"
    # Not a groupOfNames, so the overlay gives bob no memberOf for it: only a group_filter on
    # groupOfUniqueNames finds it.
    printf 'dn: cn=auditors,ou=groups,%s\nobjectClass: groupOfUniqueNames\ncn: auditors\nuniqueMember: uid=bob,ou=people,%s\n\n' "$suffix" "$suffix"
} >"$dir/entries.ldif"
ldapadd -x -H "ldap://127.0.0.1:$port" -D "$admin_dn" -w "$admin_pw" -f "$dir/entries.ldif" >"$dir/ldapadd.log" 2>&1 ||
    fail "ldapadd failed: $(tail -n 3 "$dir/ldapadd.log")"

# --- the Active-Directory-shaped tree ---------------------------------------------------------
{
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: Corp\n\n' "$ad_suffix"
    for ou in Staff Groups "Service Accounts"; do
        printf 'dn: OU=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$ad_suffix" "$ou"
    done
    ad_user() { # SAM FULL-NAME UAC [OU]
        printf 'dn: CN=%s,OU=%s,%s\nobjectClass: user\ncn: %s\nsn: %s\nsAMAccountName: %s\n' \
            "$2" "${4:-Staff}" "$ad_suffix" "$2" "${2##* }" "$1"
        printf 'userPrincipalName: %s@corp.example.com\nmail: %s@corp.example.com\nuserAccountControl: %s\nuserPassword: %s\n\n' \
            "$1" "$1" "$3" "$(hash "$1-pw")"
    }
    ad_user svc-tessera svc-tessera 66048 "Service Accounts"
    ad_user ada "Ada Lovelace" 512
    ad_user ben "Ben Okafor" 512
    ad_user cy "Cy Disabled" 514
    ad_user dee "Dee Sales" 512
    ad_user fay "Fay Cycle" 512
    ad_user nest1 "Nest One" 512
    ad_user nest3 "Nest Three" 512
    ad_user nest10 "Nest Ten" 512
    ad_user deep "Deep Chain" 512
    person_dn() { printf 'CN=%s,OU=Staff,%s' "$1" "$ad_suffix"; }
    group_dn() { printf 'CN=%s,OU=Groups,%s' "$1" "$ad_suffix"; }
    ad_group() { # NAME MEMBER-DN... (global security group: groupType -2147483646)
        local name=$1
        shift
        printf 'dn: %s\nobjectClass: group\ncn: %s\nsAMAccountName: %s\ngroupType: -2147483646\n' \
            "$(group_dn "$name")" "$name" "$name"
        for member in "$@"; do printf 'member: %s\n' "$member"; done
        printf '\n'
    }
    # Children before parents, so that the memberof overlay finds each member.
    ad_group Analysts "$(person_dn "Ada Lovelace")"
    ad_group "Platform Engineers" "$(person_dn "Ben Okafor")"
    ad_group "IT Ops" "$(group_dn "Platform Engineers")"
    ad_group Sales "$(person_dn "Dee Sales")"
    ad_group Cycle-A "$(person_dn "Fay Cycle")" "$(group_dn Cycle-B)"
    ad_group Cycle-B "$(group_dn Cycle-A)"
    ad_group Dash-Viewers "$(group_dn Analysts)" "$(group_dn Cycle-B)"
    ad_group Dash-Admins "$(group_dn "IT Ops")" "$(person_dn "Cy Disabled")"
    ad_group Chain-01 "$(person_dn "Deep Chain")"
    ad_group Chain-02 "$(group_dn Chain-01)" "$(person_dn "Nest Ten")"
    for i in $(seq 3 12); do
        members=("$(group_dn "$(printf 'Chain-%02d' $((i - 1)))")")
        [ "$i" = 9 ] && members+=("$(person_dn "Nest Three")")
        [ "$i" = 11 ] && members+=("$(person_dn "Nest One")")
        ad_group "$(printf 'Chain-%02d' "$i")" "${members[@]}"
    done
} >"$dir/ad-entries.ldif"
ldapadd -x -H "ldap://127.0.0.1:$port" -D "$ad_admin_dn" -w "$admin_pw" -f "$dir/ad-entries.ldif" >"$dir/ldapadd-ad.log" 2>&1 ||
    fail "ldapadd (AD tree) failed: $(tail -n 3 "$dir/ldapadd-ad.log")"
# A referral object is added with ManageDsaIT (-M), as it is otherwise a pointer elsewhere.
printf 'dn: OU=EMEA,%s\nobjectClass: referral\nobjectClass: extensibleObject\nou: EMEA\nref: ldap://emea.corp.example.com/OU=EMEA,%s\n' \
    "$ad_suffix" "$ad_suffix" >"$dir/ad-referral.ldif"
ldapadd -M -x -H "ldap://127.0.0.1:$port" -D "$ad_admin_dn" -w "$admin_pw" -f "$dir/ad-referral.ldif" >>"$dir/ldapadd-ad.log" 2>&1 ||
    fail "ldapadd (AD referral) failed: $(tail -n 3 "$dir/ldapadd-ad.log")"
ready=1

# --- optional watchdog ------------------------------------------------------------------------
if [ -n "$watch_pid" ]; then
    script=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
    nohup bash -c 'while kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ]; do sleep 0.5; done; exec "$2" stop "$3"' \
        watchdog "$watch_pid" "$script" "$dir" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
fi

say "directory ready on ldap://127.0.0.1:$port$([ "$tls" = 1 ] && echo " and ldaps://127.0.0.1:$tls_port") (pid $pid, $dir)"
echo "LDAP_URL=ldap://127.0.0.1:$port"
if [ "$tls" = 1 ]; then
    echo "LDAP_LDAPS_URL=ldaps://127.0.0.1:$tls_port"
    echo "LDAP_CA_CERT=$dir/ca.pem"
    echo "LDAP_OTHER_CA_CERT=$dir/other-ca.pem"
fi
echo "LDAP_BASE_DN=$suffix"
echo "LDAP_USER_BASE=ou=people,$suffix"
echo "LDAP_GROUP_BASE=ou=groups,$suffix"
echo "LDAP_BIND_DN=$service_dn"
echo "LDAP_BIND_PASSWORD=$service_pw"
echo "LDAP_ADMIN_DN=$admin_dn"
echo "LDAP_ADMIN_PASSWORD=$admin_pw"
echo "LDAP_AD_BASE_DN=$ad_suffix"
echo "LDAP_AD_USER_BASE=OU=Staff,$ad_suffix"
echo "LDAP_AD_GROUP_BASE=OU=Groups,$ad_suffix"
echo "LDAP_AD_REFERRAL_BASE=OU=EMEA,$ad_suffix"
echo "LDAP_AD_BIND_DN=$ad_service_dn"
echo "LDAP_AD_BIND_PASSWORD=$ad_service_pw"
echo "LDAP_PID=$pid"
echo "LDAP_DIR=$dir"
