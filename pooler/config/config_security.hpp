// What the settings table cannot check key by key: the OpenSSL contexts built from the
// client_tls_* and server_tls_* settings, the hba file and the auth_user those settings name.
#pragma once

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

// Reads and parses general.hba_file; checks that certificate authentication (hba "cert"
// lines, users with auth = "cert") has a CA to verify client certificates with, and that
// auth_user can log in. Throws ConfigError ("FILE: line N: problem").
void load_client_auth(Config& cfg);
// Builds every context; a database whose settings equal [pgmux]'s shares its context.
// Throws ConfigError naming the file and the problem.
void build_tls_contexts(Config& cfg);

}  // namespace pgmux::pooler
