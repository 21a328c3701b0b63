-- A bad issuer configuration is refused when written (SQLSTATE 22023), so it can never
-- weaken verification later, and nothing of it is stored. Each case is valid but for one
-- defect, and has its own issuer name so that one accepted by mistake shows up below instead
-- of colliding with the next.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'

create extension if not exists pg_oidc_authz;

-- malformed key sets
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://keys-not-array.test', array[:'aud'], '{"keys": 5}');
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://no-keys-member.test', array[:'aud'], '{"no_keys": []}');
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://jwks-is-array.test', array[:'aud'], '[]');
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://rsa-without-modulus.test', array[:'aud'],
        '{"keys": [{"kty": "RSA", "kid": "no-modulus", "alg": "RS256", "e": "AQAB"}]}');
\echo :SQLSTATE
-- duplicate kid
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://duplicate-kid.test', array[:'aud'],
        jsonb_build_object('keys', jsonb_build_array(:'jwk_rs256'::jsonb, :'jwk_rs256'::jsonb)));
\echo :SQLSTATE
-- weak keys: RSA with 1024 bits; a 16-byte secret for HS256 (at least 32 bytes are required)
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://rsa-1024.test', array[:'aud'], jsonb_build_object('keys', jsonb_build_array(:'jwk_rsa1024'::jsonb)));
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks, algorithms)
values ('https://short-hmac.test', array[:'aud'],
        '{"keys": [{"kty": "oct", "kid": "short", "alg": "HS256", "use": "sig", "k": "AAECAwQFBgcICQoLDA0ODw"}]}',
        '{HS256}');
\echo :SQLSTATE
-- a curve that does not match the key's alg: a P-384 key labelled ES256
insert into oidc.issuers (issuer, audiences, jwks)
select 'https://curve-mismatch.test', array[:'aud'],
       jsonb_build_object('keys', jsonb_build_array(k || '{"alg": "ES256", "kid": "mismatch"}'))
from jsonb_array_elements(:'jwks_main'::jsonb -> 'keys') k
where k ->> 'kid' = 'es384';
\echo :SQLSTATE
-- an HMAC key that no allowed algorithm can use (HMAC must be listed explicitly)
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://hmac-not-allowed.test', array[:'aud'], :'jwks_hmac'::jsonb);
\echo :SQLSTATE
-- algorithms: an unknown name, and `none`
insert into oidc.issuers (issuer, audiences, jwks, algorithms)
values ('https://unknown-algorithm.test', array[:'aud'], :'jwks_rs256'::jsonb, '{RS256,XS999}');
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks, algorithms)
values ('https://alg-none.test', array[:'aud'], :'jwks_rs256'::jsonb, '{RS256,none}');
\echo :SQLSTATE
-- leeway: at most 5 minutes, never negative
insert into oidc.issuers (issuer, audiences, jwks, leeway)
values ('https://leeway-6min.test', array[:'aud'], :'jwks_asym'::jsonb, '6 minutes');
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks, leeway)
values ('https://leeway-negative.test', array[:'aud'], :'jwks_asym'::jsonb, '-1 second');
\echo :SQLSTATE
-- at least one audience
insert into oidc.issuers (issuer, audiences, jwks)
values ('https://no-audience.test', '{}', :'jwks_asym'::jsonb);
\echo :SQLSTATE

select count(*) from oidc.issuers;
select issuer from oidc.issuers order by 1;

-- The same checks guard updates: the valid row stays as it was.
insert into oidc.issuers (issuer, audiences, jwks, leeway)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb, '5 minutes');
update oidc.issuers set jwks = '{"keys": 5}' where issuer = :'iss';
\echo :SQLSTATE
update oidc.issuers set leeway = '1 hour' where issuer = :'iss';
\echo :SQLSTATE
select issuer, audiences, jsonb_array_length(jwks -> 'keys') as keys, leeway from oidc.issuers;

delete from oidc.issuers;
drop extension pg_oidc_authz;
