// The TLS keys of the configuration: [pgmux] client_tls_* and server_tls_*, the server_tls_*
// overrides of [databases.X], and the OpenSSL contexts built from them once the file is read.
#pragma once

#include "pooler/config.hpp"
#include "pooler/toml_reader.hpp"

namespace pgmux::pooler {

void read_client_tls_keys(TomlTable& t, ClientTlsSettings& s);
// [pgmux] or [databases.X]: server_tls_mode, server_tls_ca_file, server_tls_cert_file,
// server_tls_key_file, server_tls_min_version.
void read_server_tls_keys(TomlTable& t, ServerTlsSettings& s);
// Builds every context; a database whose settings equal [pgmux]'s shares its context.
// Throws ConfigError naming the file and the problem.
void build_tls_contexts(Config& cfg);

}  // namespace pgmux::pooler
