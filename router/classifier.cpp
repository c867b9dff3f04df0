// libpg_query parses to protobuf; a descriptor-driven walk visits every node, so no node type
// can hide a function call or a data-modifying statement from the classifier.
#include "router/classifier.hpp"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <cstring>

namespace pgmux::router {

std::string_view to_string(StatementKind k) {
  switch (k) {
    case StatementKind::read:
      return "read";
    case StatementKind::write:
      return "write";
    case StatementKind::begin_read_only:
      return "begin_read_only";
    case StatementKind::begin_read_write:
      return "begin_read_write";
    case StatementKind::transaction_end:
      return "transaction_end";
    case StatementKind::session:
      return "session";
    case StatementKind::set_target:
      return "set_target";
  }
  return "write";
}

namespace {

constexpr int kMaxDepth = 2000;  // deeper trees are judged writes rather than walked

// Finds, anywhere below a node, what makes a statement more than a read.
struct SideEffectWalk {
  const FunctionCatalog& functions;
  bool write = false;

  void visit(const ProtobufCMessage* m, int depth) {
    if (m == nullptr || write) return;
    if (depth > kMaxDepth) {
      write = true;
      return;
    }
    const ProtobufCMessageDescriptor* d = m->descriptor;
    if (d == &pg_query__func_call__descriptor) {
      const auto* f = reinterpret_cast<const PgQuery__FuncCall*>(m);
      if (f->n_funcname > 0) {
        const PgQuery__Node* last = f->funcname[f->n_funcname - 1];
        if (last->node_case == PG_QUERY__NODE__NODE_STRING &&
            functions.is_write(last->string->sval)) {
          write = true;
          return;
        }
      }
    } else if (d == &pg_query__locking_clause__descriptor ||  // FOR UPDATE/SHARE/…
               d == &pg_query__into_clause__descriptor ||     // SELECT INTO
               d == &pg_query__insert_stmt__descriptor ||     // data-modifying CTE
               d == &pg_query__update_stmt__descriptor || d == &pg_query__delete_stmt__descriptor ||
               d == &pg_query__merge_stmt__descriptor) {
      write = true;
      return;
    }
    const char* base = reinterpret_cast<const char*>(m);
    for (unsigned i = 0; i < d->n_fields && !write; ++i) {
      const ProtobufCFieldDescriptor& f = d->fields[i];
      if (f.type != PROTOBUF_C_TYPE_MESSAGE) continue;
      if (f.label == PROTOBUF_C_LABEL_REPEATED) {
        const auto n = *reinterpret_cast<const std::size_t*>(base + f.quantifier_offset);
        const auto* items = *reinterpret_cast<ProtobufCMessage* const* const*>(base + f.offset);
        for (std::size_t k = 0; k < n; ++k) visit(items[k], depth + 1);
      } else {
        if ((f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
            *reinterpret_cast<const std::uint32_t*>(base + f.quantifier_offset) != f.id) {
          continue;  // not the member this oneof holds
        }
        visit(*reinterpret_cast<ProtobufCMessage* const*>(base + f.offset), depth + 1);
      }
    }
  }
};

bool has_side_effects(const PgQuery__Node* node, const FunctionCatalog& functions) {
  SideEffectWalk walk{functions};
  walk.visit(&node->base, 0);
  return walk.write;
}

// A DefElem's argument read as a boolean: absent means true (EXPLAIN (ANALYZE)).
bool def_elem_true(const PgQuery__DefElem* e) {
  const PgQuery__Node* a = e->arg;
  if (a == nullptr) return true;
  switch (a->node_case) {
    case PG_QUERY__NODE__NODE_BOOLEAN:
      return a->boolean->boolval;
    case PG_QUERY__NODE__NODE_INTEGER:
      return a->integer->ival != 0;
    case PG_QUERY__NODE__NODE_STRING: {
      const std::string_view v = a->string->sval;
      return v == "true" || v == "on" || v == "1" || v == "yes";
    }
    case PG_QUERY__NODE__NODE_A_CONST: {
      const PgQuery__AConst* c = a->a_const;
      if (c->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL) return c->boolval->boolval;
      if (c->val_case == PG_QUERY__A__CONST__VAL_IVAL) return c->ival->ival != 0;
      if (c->val_case == PG_QUERY__A__CONST__VAL_SVAL) {
        const std::string_view v = c->sval->sval;
        return v == "true" || v == "on" || v == "1" || v == "yes";
      }
      return false;
    }
    default:
      return false;
  }
}

// True when `options` (DefElems) hold `name` set to true.
bool option_true(PgQuery__Node* const* options, std::size_t n, std::string_view name) {
  for (std::size_t i = 0; i < n; ++i) {
    if (options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const PgQuery__DefElem* e = options[i]->def_elem;
    if (name == e->defname) return def_elem_true(e);
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A SET's value as text: SET x = 'v', SET x = v, SET x TO v.
std::string set_value(const PgQuery__VariableSetStmt* s) {
  if (s->n_args != 1) return "";
  const PgQuery__Node* a = s->args[0];
  if (a->node_case == PG_QUERY__NODE__NODE_A_CONST &&
      a->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL) {
    return a->a_const->sval->sval;
  }
  if (a->node_case == PG_QUERY__NODE__NODE_STRING) return a->string->sval;
  return "";
}

Classification classify_one(const PgQuery__Node* stmt, const FunctionCatalog& functions);

// EXPLAIN without ANALYZE executes nothing, and a standby explains even a write.
StatementKind explain_kind(const PgQuery__ExplainStmt* e, const FunctionCatalog& functions) {
  if (!option_true(e->options, e->n_options, "analyze")) return StatementKind::read;
  if (e->query == nullptr) return StatementKind::write;
  return classify_one(e->query, functions).kind == StatementKind::read ? StatementKind::read
                                                                       : StatementKind::write;
}

StatementKind transaction_kind(const PgQuery__TransactionStmt* t) {
  switch (t->kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
      return option_true(t->options, t->n_options, "transaction_read_only")
                 ? StatementKind::begin_read_only
                 : StatementKind::begin_read_write;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
      return StatementKind::write;  // two-phase commit exists only on the primary
    default:
      return StatementKind::transaction_end;
  }
}

// SET pgmux.* steers routing; SET TRANSACTION READ ONLY makes a read-only transaction; any
// other SET is session state.
Classification set_classification(const PgQuery__VariableSetStmt* s) {
  Classification c;
  const std::string name = lower(s->name);
  if (name.starts_with("pgmux.")) {
    c.kind = StatementKind::set_target;
    c.setting_name = name;
    c.target_value = s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE
                         ? lower(set_value(s))
                         : std::string();  // RESET / SET … TO DEFAULT
  } else if (name == "transaction" && option_true(s->args, s->n_args, "transaction_read_only")) {
    c.kind = StatementKind::begin_read_only;
  } else {
    c.kind = StatementKind::session;
  }
  return c;
}

Classification classify_one(const PgQuery__Node* stmt, const FunctionCatalog& functions) {
  Classification c;
  c.kind = StatementKind::write;
  switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:  // also VALUES and TABLE
      if (!has_side_effects(stmt, functions)) c.kind = StatementKind::read;
      break;
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
      c.kind = StatementKind::read;
      break;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
      c.kind = explain_kind(stmt->explain_stmt, functions);
      break;
    case PG_QUERY__NODE__NODE_COPY_STMT: {
      const PgQuery__CopyStmt* cp = stmt->copy_stmt;
      if (!cp->is_from && !cp->is_program &&
          (cp->query == nullptr || !has_side_effects(cp->query, functions))) {
        c.kind = StatementKind::read;
      }
      break;
    }
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
      c.kind = transaction_kind(stmt->transaction_stmt);
      break;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
      return set_classification(stmt->variable_set_stmt);
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
      c.kind = StatementKind::session;
      break;
    default:
      break;  // DML, DDL, LISTEN, CALL, DO, EXECUTE, PREPARE, LOCK, …: the primary
  }
  return c;
}

// The strictest of several statements' kinds. A transaction opened read-write stays on the
// primary; "BEGIN; SET TRANSACTION READ ONLY" is a read-only one.
StatementKind combine(StatementKind a, StatementKind b) {
  using K = StatementKind;
  if (a == K::write || b == K::write || a == K::set_target || b == K::set_target) {
    return K::write;
  }
  if (a == K::begin_read_write && b == K::begin_read_only) return K::begin_read_only;
  if (a == K::begin_read_write || b == K::begin_read_write) return K::begin_read_write;
  if (a == K::begin_read_only || b == K::begin_read_only) return K::begin_read_only;
  if (a == K::read || b == K::read) return K::read;
  if (a == K::session || b == K::session) return K::session;
  return K::transaction_end;
}

}  // namespace

Hint leading_hint(std::string_view sql) {
  std::size_t i = sql.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || sql.substr(i, 2) != "/*") return Hint::none;
  const std::size_t end = sql.find("*/", i + 2);
  if (end == std::string_view::npos) return Hint::none;
  std::string_view body = sql.substr(i + 2, end - i - 2);
  const std::size_t a = body.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return Hint::none;
  body = body.substr(a, body.find_last_not_of(" \t\r\n") - a + 1);
  if (body == "pgmux:primary") return Hint::primary;
  if (body == "pgmux:replica") return Hint::replica;
  return Hint::none;
}

namespace {

// Folds each statement's classification into `result`: the first one's, then the strictest.
void classify_statements(const PgQuery__ParseResult& tree, const FunctionCatalog& functions,
                         Classification& result) {
  bool first = true;
  for (std::size_t i = 0; i < tree.n_stmts; ++i) {
    const PgQuery__Node* stmt = tree.stmts[i]->stmt;
    if (stmt == nullptr) continue;
    Classification one = classify_one(stmt, functions);
    if (first) {
      result.kind = one.kind;
      result.target_value = std::move(one.target_value);
      result.setting_name = std::move(one.setting_name);
      first = false;
    } else {
      result.kind = combine(result.kind, one.kind);
      result.target_value.clear();
      result.setting_name.clear();
    }
  }
  if (first) result.kind = StatementKind::transaction_end;  // empty query: harmless anywhere
}

}  // namespace

Classification classify(std::string_view sql, const FunctionCatalog& functions) {
  Classification result;
  result.hint = leading_hint(sql);
  // libpg_query wants a NUL-terminated string; a query from the wire has one right after it,
  // but a view may not: copy (only on a cache miss).
  const std::string text(sql);
  PgQueryProtobufParseResult parsed = pg_query_parse_protobuf(text.c_str());
  if (parsed.error != nullptr) {
    result.kind = StatementKind::write;
    result.error = parsed.error->message != nullptr ? parsed.error->message : "parse error";
    pg_query_free_protobuf_parse_result(parsed);
    return result;
  }
  PgQuery__ParseResult* tree =
      pg_query__parse_result__unpack(nullptr, parsed.parse_tree.len,
                                     reinterpret_cast<const std::uint8_t*>(parsed.parse_tree.data));
  pg_query_free_protobuf_parse_result(parsed);
  if (tree == nullptr) {
    result.error = "unreadable parse tree";
    return result;
  }
  classify_statements(*tree, functions, result);
  pg_query__parse_result__free_unpacked(tree, nullptr);
  return result;
}

}  // namespace pgmux::router
