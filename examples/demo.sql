-- pg_oidc_authz in five steps. Run by examples/demo.sh, which mints the tokens and passes them
-- (and the issuer's public keys) as psql variables: :'jwks', :'alice', :'bob', :'forged', :'expired'.
\set ON_ERROR_STOP on
\set VERBOSITY default
\pset null '(null)'

-- 1. Trust one issuer: its audience and its keys (stored, never fetched while verifying).
create extension pg_oidc_authz;
insert into oidc.issuers (issuer, audiences, jwks, comment)
values ('https://issuer.test', '{api://test}', :'jwks', 'demo issuer');
select issuer, audiences, jsonb_array_length(jwks -> 'keys') as keys from oidc.issuers;

-- 2. A table whose rows belong to token subjects. FORCE applies the policy to the owner too;
--    the application connects as demo_app: not the owner, no BYPASSRLS.
create role demo_app login;
create table documents (id int primary key, owner text not null, title text not null);
insert into documents values
    (1, 'alice', 'Alice''s roadmap'), (2, 'alice', 'Alice''s notes'), (3, 'bob', 'Bob''s budget');
alter table documents enable row level security;
alter table documents force row level security;
create policy documents_by_owner on documents for select using (owner = oidc.sub());
grant select on documents to demo_app;
set role demo_app;

-- 3. Each request hands its bearer token to its own transaction.
begin;
set local oidc.token = :'alice';
select oidc.sub() as sub, oidc.scopes() as scopes, oidc.has_scope('write') as can_write;
select * from documents order by id;
commit;

begin;
set local oidc.token = :'bob';
select oidc.sub() as sub, oidc.scopes() as scopes, oidc.has_scope('write') as can_write;
select * from documents order by id;
commit;

-- 4. After the transaction the token is gone: no token, no rows.
select oidc.sub() as sub, (select count(*) from documents) as visible;

-- 5. A forged and an expired token are refused (SQLSTATE 28000). These errors are expected.
\set ON_ERROR_STOP off
begin;
set local oidc.token = :'forged';
select * from documents order by id;
\echo SQLSTATE :SQLSTATE
rollback;
begin;
set local oidc.token = :'expired';
select * from documents order by id;
\echo SQLSTATE :SQLSTATE
rollback;
\set ON_ERROR_STOP on

-- token_status() reports what failed without raising, for logging and debugging.
begin;
set local oidc.token = :'expired';
select oidc.token_status() as status;
rollback;
reset role;

-- 6. Fine-grained rules as data: a permit for owners, a forbid for a label, decided per row
--    by oidc.allow() in a policy, and explained.
insert into oidc.rules (name, effect, actions, resource_type, condition) values
('owners-read', 'permit', '{read}', 'document', 'resource.owner == claims.sub'),
('no-budgets', 'forbid', '{read}', 'document', 'resource.title.contains("budget")');
create policy documents_by_rules on documents as restrictive for select
    using (oidc.allow('read', 'document', 'owner', owner, 'title', title));
set role demo_app;
begin;
set local oidc.token = :'alice';
select * from documents order by id;
commit;
begin;
set local oidc.token = :'bob';
-- bob owns "Bob's budget", but the forbid wins over his permit
select * from documents order by id;
select oidc.explain('read', 'document', jsonb_build_object('owner', 'bob', 'title', 'Bob''s budget')) - 'at'
    as why_not;
commit;
reset role;
