-- Optional migration shim: Supabase / PostgREST-style auth.uid(), auth.jwt(), auth.role(),
-- auth.email(), and pg_session_jwt-style auth.user_id(), auth.session(), answered from the
-- claims pg_oidc_authz has verified, so that existing policies keep working and stop
-- trusting `request.jwt.claims` (a setting any SQL user can overwrite).
--
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/supabase_compat.sql     (as a superuser, after
--                                                                    create extension pg_oidc_authz)
--
-- Nothing here reads request.jwt.claims, request.jwt.claim.* or any other claims setting: the
-- token comes from oidc.token (set_config('oidc.token', $1, true) per transaction) or from
-- PostgREST's request.headers, and is verified against oidc.issuers like any other call.
-- Without a token every function returns NULL, except auth.role(), which returns 'anon'; a
-- present but invalid token raises SQLSTATE 28000, so a policy never sees unverified claims.
--
-- The functions are SQL functions with a body parsed once, here (the SQL-standard RETURN
-- form): the planner inlines them into the policy, so `auth.uid() = user_id` costs exactly
-- what `oidc.uid() = user_id` costs, and the caller's search_path cannot change what they
-- call. They are STABLE and PARALLEL SAFE like the oidc.* functions they call, and carry no
-- SET search_path clause, which would stop the inlining (nothing in them needs one).
--
-- Re-running the script replaces the functions. An existing `auth` schema (Supabase's own)
-- is reused and its privileges are left alone; a new one is created with USAGE for PUBLIC.
-- The script refuses, and changes nothing, when that schema or one of its functions is
-- owned by another role than the one running it (unless a superuser).
-- Remove with: drop function auth.uid(), auth.jwt(), auth.role(), auth.email(),
-- auth.user_id(), auth.session();

begin;
set local search_path = pg_catalog, pg_temp;

-- Refuse, changing nothing, where `auth` or one of the shim's functions belongs to a role
-- other than the one running this script (or a superuser): CREATE OR REPLACE keeps a
-- function's owner, who could later redefine auth.uid() under every policy that calls it.
do $$
declare
    bad text;
begin
    select pg_catalog.string_agg(what, ', ' order by what) into bad from (
        select pg_catalog.format('schema auth (owned by %s)', r.rolname) as what
          from pg_catalog.pg_namespace n join pg_catalog.pg_roles r on r.oid = n.nspowner
         where n.nspname = 'auth' and r.rolname <> current_user and not r.rolsuper
        union all
        select pg_catalog.format('function auth.%s() (owned by %s)', p.proname, r.rolname)
          from pg_catalog.pg_proc p
          join pg_catalog.pg_namespace n on n.oid = p.pronamespace
          join pg_catalog.pg_roles r on r.oid = p.proowner
         where n.nspname = 'auth' and p.pronargs = 0
           and p.proname in ('uid', 'jwt', 'role', 'email', 'user_id', 'session')
           and r.rolname <> current_user and not r.rolsuper
    ) owned_by_others;
    if bad is not null then
        raise exception 'the shim would keep objects owned by another role: %', bad
            using errcode = 'insufficient_privilege',
                  hint = 'drop them or change their owner (ALTER ... OWNER TO) to the role running this script or a superuser, then run it again';
    end if;
    if not exists (select from pg_catalog.pg_namespace where nspname = 'auth') then
        create schema auth;
        grant usage on schema auth to public;
    end if;
end
$$;

-- Supabase: the `sub` claim as a uuid. A `sub` that is not a uuid raises 22P02, as Supabase's
-- cast does; with such issuers (Auth0's `auth0|…`, most non-Supabase providers) use
-- auth.user_id() or oidc.sub() and a text column.
create or replace function auth.uid() returns uuid
    language sql stable parallel safe
    return oidc.uid();

-- Supabase: all claims of the verified token (jsonb), e.g. auth.jwt() ->> 'aal'.
create or replace function auth.jwt() returns jsonb
    language sql stable parallel safe
    return oidc.claims();

-- Supabase: the token's `role` claim; a verified token without one is 'authenticated', no
-- token is 'anon' (what Supabase's anon key and signed-in users' tokens carry).
create or replace function auth.role() returns text
    language sql stable parallel safe
    return case when oidc.issuer() is null then 'anon'::pg_catalog.text
                else coalesce(oidc.claim_text('role'), 'authenticated'::pg_catalog.text) end;

-- Supabase: the `email` claim (not a proof that the address was verified: see `email_verified`).
create or replace function auth.email() returns text
    language sql stable parallel safe
    return oidc.claim_text('email');

-- pg_session_jwt: the `sub` claim as text.
create or replace function auth.user_id() returns text
    language sql stable parallel safe
    return oidc.sub();

-- pg_session_jwt: all claims of the verified token.
create or replace function auth.session() returns jsonb
    language sql stable parallel safe
    return oidc.claims();

comment on function auth.uid() is 'pg_oidc_authz shim: oidc.uid(), the verified sub as a uuid';
comment on function auth.jwt() is 'pg_oidc_authz shim: oidc.claims(), the verified claims';
comment on function auth.role() is 'pg_oidc_authz shim: the verified role claim, else authenticated; anon without a token';
comment on function auth.email() is 'pg_oidc_authz shim: the verified email claim';
comment on function auth.user_id() is 'pg_oidc_authz shim: oidc.sub(), the verified sub';
comment on function auth.session() is 'pg_oidc_authz shim: oidc.claims(), the verified claims';

commit;
