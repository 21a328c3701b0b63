-- The example API's schema (examples/api/server.py). Run as a superuser in the API's database;
-- safe to run again. Roles are cluster-wide and created only if missing.
create extension if not exists pg_oidc_authz;

-- PostgREST's pattern: the backend logs in as api_authenticator, which has no rights of its own
-- (NOINHERIT), and switches to api_user inside each request's transaction (SET LOCAL ROLE).
-- Neither owns the table nor has BYPASSRLS.
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'api_user') then
        create role api_user nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'api_authenticator') then
        create role api_authenticator login noinherit;
    end if;
end
$$;
grant api_user to api_authenticator;

create table if not exists documents (
    id bigint generated always as identity primary key,
    owner text not null default oidc.sub(),
    title text not null,
    body text not null default ''
);
alter table documents enable row level security;
alter table documents force row level security;   -- the owner too

-- Everyone reads their own documents; callers whose token has the role `auditor` read all.
drop policy if exists documents_read on documents;
create policy documents_read on documents for select
    using (owner = oidc.sub() or oidc.has_role('auditor'));
-- Writing needs the scope documents:write, and only in one's own name.
drop policy if exists documents_insert on documents;
create policy documents_insert on documents for insert
    with check (owner = oidc.sub() and oidc.has_scope('documents:write'));

grant select, insert on documents to api_user;
-- OIDC Back-Channel Logout (POST /backchannel-logout): the backend hands the provider's logout
-- token to the database, which verifies it and revokes the session.
grant execute on function oidc.logout(text) to api_user;
