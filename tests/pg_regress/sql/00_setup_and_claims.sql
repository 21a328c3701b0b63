-- Verified claims as a non-owner role under forced row-level security, and the
-- transaction scope of `set_config('oidc.token', ..., true)`.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
-- Roles outlive the test database: clear any left by an interrupted run.
set client_min_messages = warning;
drop role if exists app_user, app_owner;
reset client_min_messages;

create extension pg_oidc_authz;
-- Default algorithms (asymmetric only), so the key set holds no HMAC key.
insert into oidc.issuers (issuer, audiences, jwks, roles_claim, comment)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb, 'realm_access.roles', 'regression: main issuer');

-- The table belongs to a non-superuser, so FORCE applies to its owner too; the application
-- role is neither owner nor BYPASSRLS.
create role app_owner nologin;
create role app_user login;
create table docs (id int primary key, owner text not null, body text not null);
insert into docs values
    (1, 'alice', 'alice: plan'), (2, 'alice', 'alice: notes'),
    (3, 'bob', 'bob: draft'), (4, 'carol', 'carol: secret');
alter table docs owner to app_owner;
alter table docs enable row level security;
alter table docs force row level security;
create policy docs_read on docs for select using (owner = oidc.sub());
create policy docs_write on docs for insert with check (owner = oidc.sub());
grant select, insert on docs to app_user;
select rolsuper, rolbypassrls from pg_roles where rolname = 'app_user';

set role app_user;

-- No token: anonymous. Accessors are NULL or false, policies see nothing.
select oidc.sub(), oidc.issuer(), oidc.claims(), oidc.scopes(), oidc.roles();
select oidc.has_scope('read'), oidc.has_any_scope('{read}'), oidc.has_all_scopes('{read}'),
       oidc.has_role('reader');
select * from docs order by id;

begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
select oidc.sub(), oidc.issuer(), oidc.scopes(), oidc.has_scope('read'), oidc.has_scope('admin');
select oidc.has_any_scope('{admin,write}') as any_admin_write, oidc.has_any_scope('{admin}') as any_admin,
       oidc.has_all_scopes('{read,write}') as all_read_write, oidc.has_all_scopes('{read,admin}') as all_read_admin;
-- roles come from the issuer's roles_claim path, not from the top-level `roles` claim
select oidc.roles(), oidc.has_role('editor'), oidc.has_role('top-level-roles-claim');
select oidc.claim('realm_access.roles') as dotted, oidc.claim('/realm_access/roles/1') as pointer,
       oidc.claim_text('/email') as email_pointer, oidc.claim_text('email') as email_dotted;
-- RFC 6901 escapes reach namespaced claims that a dotted path cannot
select oidc.claim_text('/https:~1~1issuer.test~1tenant') as tenant,
       oidc.claim('missing.path') as missing, oidc.claim('/realm_access/roles/9') as out_of_range;
select oidc.claims();
select * from docs order by id;
insert into docs values (10, 'alice', 'alice: new');
insert into docs values (11, 'bob', 'written by alice as bob');
rollback;

-- The token was local to that transaction: the next one on this connection is anonymous.
select oidc.sub();
select * from docs order by id;

begin;
set local oidc.token = :'tok_bob';
-- bob's scope claim is an array
select oidc.sub(), oidc.scopes(), oidc.has_scope('read'), oidc.has_scope('write'), oidc.roles();
select * from docs order by id;
commit;
select oidc.sub();

-- oidc.uid(): the subject as a uuid, or an error when it is not one
begin;
set local oidc.token = :'tok_uuid';
select oidc.uid();
commit;
begin;
set local oidc.token = :'tok_alice';
select oidc.uid();
\echo :SQLSTATE
rollback;

-- FORCE ROW LEVEL SECURITY: the owner gets no exemption
reset role;
set role app_owner;
select * from docs order by id;
begin;
set local oidc.token = :'tok_bob';
select * from docs order by id;
commit;

reset role;
drop table docs;
drop role app_user, app_owner;
drop extension pg_oidc_authz;
