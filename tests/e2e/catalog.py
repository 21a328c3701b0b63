"""The extension's schema as normalised text, for comparing two databases' installs.

`extension_schema(conn)` lists, one line per fact, everything CREATE EXTENSION pg_oidc_authz
makes in a database: the extension row (version, schema, configuration tables and their
dump filters), its members (pg_depend), the schema `oidc` with its privileges, every
function there (pg_get_functiondef: arguments, defaults, result, language, volatility,
strictness, parallel safety, leakproof, security definer, cost, rows, support function,
SET clauses, body) with owner, privileges and comment, every relation (kind, persistence,
row security, options, owner, privileges, comment), its columns (type, collation, NOT NULL,
default, identity, generated, comment, privileges), constraints, indexes, triggers with
their enabled state, views' definitions, policies, and the role oidc_admin. Oids never
appear: objects are named.

Columns are listed by name, not by position: an upgrade adds columns with ADD COLUMN, after
the existing ones, where a fresh install may have them in between (README "Upgrade"). That
is the only difference this comparison allows.
"""

from __future__ import annotations

import psycopg

# The extension and its schema are named in the queries. Every query returns one text column; the facts are sorted, so the order of the queries and
# of their rows does not matter.
_ACL = """coalesce((select string_agg(e, ', ' order by e) from (
                      select format('%s=%s%s by %s',
                                    case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end,
                                    a.privilege_type, case when a.is_grantable then '*' else '' end,
                                    pg_get_userbyid(a.grantor)) as e
                        from aclexplode({acl}) a) as acl), 'default')"""

QUERIES = [
    # The extension itself, with its configuration tables by name and their dump filters.
    """select format('extension %s version %s schema %s relocatable %s', e.extname, e.extversion,
                     e.extnamespace::regnamespace, e.extrelocatable)
         from pg_extension e where e.extname = 'pg_oidc_authz'""",
    """select format('config table %s filter %L', c.t::regclass, coalesce(c.f, ''))
         from pg_extension e,
              unnest(e.extconfig, coalesce(e.extcondition, array_fill(''::text, array[cardinality(e.extconfig)]))) as c(t, f)
        where e.extname = 'pg_oidc_authz'""",
    # Membership: what DROP EXTENSION drops and pg_dump leaves to CREATE EXTENSION.
    """select 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
         from pg_depend d join pg_extension e on d.refclassid = 'pg_extension'::regclass and d.refobjid = e.oid
        where e.extname = 'pg_oidc_authz' and d.deptype = 'e'""",
    f"""select format('schema %s owner %s acl %s comment %L', n.nspname, pg_get_userbyid(n.nspowner),
                      {_ACL.format(acl='n.nspacl')}, obj_description(n.oid, 'pg_namespace'))
          from pg_namespace n where n.nspname = 'oidc'""",
    # Functions: the whole definition as Postgres prints it, and what is not in it.
    f"""select format(E'function %s\\n%s\\nowner %s acl %s comment %L', p.oid::regprocedure,
                      pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner),
                      {_ACL.format(acl='p.proacl')}, obj_description(p.oid, 'pg_proc'))
          from pg_proc p where p.pronamespace = 'oidc'::regnamespace""",
    f"""select format('relation %s kind %s persistence %s rls %s forced %s options %s owner %s acl %s comment %L',
                      c.oid::regclass, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
                      coalesce(c.reloptions::text, '{{}}'), pg_get_userbyid(c.relowner),
                      {_ACL.format(acl='c.relacl')}, obj_description(c.oid, 'pg_class'))
          from pg_class c where c.relnamespace = 'oidc'::regnamespace""",
    f"""select format('column %s.%s type %s collation %s not null %s default %s identity %L generated %L comment %L acl %s',
                      c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
                      coalesce(nullif(a.attcollation, 0)::regcollation::text, '-'), a.attnotnull,
                      coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'), a.attidentity, a.attgenerated,
                      col_description(c.oid, a.attnum), {_ACL.format(acl='a.attacl')})
          from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          left join pg_attrdef ad on ad.adrelid = c.oid and ad.adnum = a.attnum
         where c.relnamespace = 'oidc'::regnamespace""",
    """select format('constraint %s on %s: %s', con.conname, con.conrelid::regclass, pg_get_constraintdef(con.oid))
         from pg_constraint con where con.connamespace = 'oidc'::regnamespace""",
    """select 'index ' || pg_get_indexdef(i.indexrelid)
         from pg_index i join pg_class c on c.oid = i.indrelid where c.relnamespace = 'oidc'::regnamespace""",
    # Internal triggers (foreign keys') carry oids in their names; their constraints are above.
    """select format('trigger %s enabled %s', pg_get_triggerdef(t.oid), t.tgenabled)
         from pg_trigger t join pg_class c on c.oid = t.tgrelid
        where c.relnamespace = 'oidc'::regnamespace and not t.tgisinternal""",
    """select format(E'view %s\\n%s', c.oid::regclass, pg_get_viewdef(c.oid))
         from pg_class c where c.relnamespace = 'oidc'::regnamespace and c.relkind in ('v', 'm')""",
    """select format('policy %s on %s.%s %s %s to %s using %s check %s', p.policyname, p.schemaname,
                     p.tablename, p.permissive, p.cmd, p.roles, p.qual, p.with_check)
         from pg_policies p where p.schemaname = 'oidc'""",
    """select format('type %s kind %s', t.oid::regtype, t.typtype)
         from pg_type t where t.typnamespace = 'oidc'::regnamespace""",
    # Cluster-wide, but made by the install: its attributes and comment.
    """select format('role %s login %s super %s createrole %s createdb %s replication %s bypassrls %s comment %L',
                     r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
                     r.rolbypassrls, shobj_description(r.oid, 'pg_authid'))
         from pg_roles r where r.rolname = 'oidc_admin'""",
]


def extension_schema(conn: psycopg.Connection) -> list[str]:
    """The facts, sorted; compare two lists with difflib for a readable failure."""
    facts: list[str] = []
    for query in QUERIES:
        # No parameters: psycopg then leaves the queries' format() % signs alone.
        facts += [row[0] for row in conn.execute(query).fetchall()]
    return sorted(facts)
