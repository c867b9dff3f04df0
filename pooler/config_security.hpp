// The security keys of the configuration: [pgmux] client_tls_*, server_tls_* (and their
// [databases.X] overrides), server_auth_methods and friends, and the OpenSSL contexts built
// from them once the file is read.
#pragma once

#include "pooler/config.hpp"
#include "pooler/toml_reader.hpp"

namespace pgmux::pooler {

void read_client_tls_keys(TomlTable& t, ClientTlsSettings& s);
// [pgmux] or [databases.X]: server_tls_mode, server_tls_ca_file, server_tls_cert_file,
// server_tls_key_file, server_tls_min_version.
void read_server_tls_keys(TomlTable& t, ServerTlsSettings& s);
// [pgmux] server_auth_methods, server_cleartext_without_tls, server_scram_max_iterations.
void read_server_auth_keys(TomlTable& t, ServerAuthSettings& s);
// [pgmux] hba_file, auth_user, auth_query, auth_cache_ttl_ms.
void read_client_auth_keys(TomlTable& t, GeneralSettings& g);
// Reads and parses general.hba_file; checks that certificate authentication (hba "cert"
// lines, users with auth = "cert") has a CA to verify client certificates with, and that
// auth_user can log in. Throws ConfigError ("FILE: line N: problem").
void load_client_auth(Config& cfg);
// Builds every context; a database whose settings equal [pgmux]'s shares its context.
// Throws ConfigError naming the file and the problem.
void build_tls_contexts(Config& cfg);

}  // namespace pgmux::pooler
